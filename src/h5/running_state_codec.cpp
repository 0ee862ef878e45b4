#include "h5/running_state_codec.hpp"

#include "ckptio/error.hpp"
#include "core/untrusted_json.hpp"

namespace ckptio::detail::h5 {

std::string encode_running_state(const RunningState& s) {
  // Readers refuse JSON nested deeper than kMaxJsonDepth (the three values sit one level
  // inside the stored object): refuse it here, before a checkpoint nobody can load is written.
  for (const auto& [field, value] :
       {std::pair{"lr_scheduler", &s.lr_scheduler}, {"sampler", &s.sampler}, {"extras", &s.extras}}) {
    if (json_depth(*value, kMaxJsonDepth - 1) > kMaxJsonDepth - 1)
      throw UsageError(std::string("running state field '") + field + "' nests arrays and objects more than " +
                       std::to_string(kMaxJsonDepth - 1) + " levels deep, which loads refuse");
  }
  try {
    nlohmann::json j = {
        {"epoch", s.epoch},     {"step", s.step},    {"global_step", s.global_step}, {"lr_scheduler", s.lr_scheduler},
        {"sampler", s.sampler}, {"extras", s.extras}};
    return j.dump();
  } catch (const nlohmann::json::exception& e) {
    throw UsageError(std::string("running state cannot be stored as JSON: ") + e.what());
  }
}

RunningState decode_running_state(const std::string& text, const std::string& file) {
  const nlohmann::json j = parse_untrusted_json(text, file + ": invalid running state");
  auto bad = [&](const std::string& what) -> FormatError {
    return FormatError(file + ": invalid running state: " + what);
  };
  if (!j.is_object()) throw bad("not a JSON object");
  RunningState s;
  for (auto [key, field] : {std::pair{"epoch", &s.epoch}, {"step", &s.step}, {"global_step", &s.global_step}}) {
    if (!j.contains(key) || !j[key].is_number_integer())
      throw bad(std::string("'") + key + "' is missing or not an integer");
    *field = j[key].get<std::int64_t>();
  }
  s.lr_scheduler = j.value("lr_scheduler", nlohmann::json::object());
  s.sampler = j.value("sampler", nlohmann::json::object());
  s.extras = j.value("extras", nlohmann::json::object());
  return s;
}

}  // namespace ckptio::detail::h5
