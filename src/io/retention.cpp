#include "io/retention.hpp"

#include <algorithm>

#include "ckptio/error.hpp"
#include "ckptio/inspect.hpp"
#include "io/fs_util.hpp"

namespace fs = std::filesystem;

namespace ckptio::detail {
namespace {

bool older(const std::string& a, const std::string& b) {
  const auto na = parse_checkpoint_name(a), nb = parse_checkpoint_name(b);
  if (na->global_step != nb->global_step) return na->global_step < nb->global_step;
  if (na->epoch != nb->epoch) return na->epoch < nb->epoch;
  return a < b;
}

}  // namespace

std::vector<std::string> committed_checkpoints(const fs::path& root) {
  std::vector<std::string> names;
  std::error_code ec;
  fs::directory_iterator it(root, ec);
  if (ec) throw IoError("cannot list checkpoint root " + root.string() + ": " + ec.message());
  for (const auto& entry : it) {
    const std::string name = entry.path().filename().string();
    if (!parse_checkpoint_name(name)) continue;
    if (!entry.is_regular_file(ec) || entry.is_symlink(ec)) continue;
    names.push_back(name);
  }
  std::sort(names.begin(), names.end(), older);
  return names;
}

std::vector<std::string> load_order(const fs::path& root) {
  auto names = committed_checkpoints(root);
  std::reverse(names.begin(), names.end());  // newest first
  std::vector<std::string> order;
  const auto latest = read_latest(root);
  if (!latest) return names;
  const std::string latest_name = latest->filename().string();
  order.push_back(latest_name);
  for (const auto& n : names)
    if (n != latest_name && older(n, latest_name)) order.push_back(n);
  return order;
}

std::vector<fs::path> checkpoints_to_prune(const fs::path& root, int keep_last, const std::string& just_committed) {
  std::vector<fs::path> victims;
  if (keep_last <= 0) return victims;
  const auto names = committed_checkpoints(root);
  std::string latest_name;
  if (auto latest = read_latest(root)) latest_name = latest->filename().string();
  const std::size_t keep = static_cast<std::size_t>(keep_last);
  if (names.size() <= keep) return victims;
  for (std::size_t i = 0; i + keep < names.size(); ++i) {
    if (names[i] == just_committed || names[i] == latest_name) continue;
    victims.push_back(root / names[i]);
  }
  return victims;
}

std::vector<fs::path> stale_partials(const fs::path& root) {
  std::vector<fs::path> out;
  std::error_code ec;
  fs::directory_iterator it(root, ec);
  if (ec) return out;
  for (const auto& entry : it) {
    const std::string name = entry.path().filename().string();
    const std::string suffix = ".h5.partial";
    if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0 &&
        parse_checkpoint_name(name.substr(0, name.size() - std::string(".partial").size())))
      out.push_back(entry.path());
  }
  return out;
}

}  // namespace ckptio::detail
