// Checks every value ckptio reads from .pt files written by the real torch.save against the
// values the same Python script dumped (make_pt_files.py), and that the files that must be
// refused are refused with the expected message and without running anything.
//   pt_interop_check DIR
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckptio/error.hpp"
#include "ckptio/torch_file.hpp"

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
  if (!ok) {
    ++failures;
    std::cerr << "FAIL: " << what << '\n';
  }
}

std::string hex(const std::vector<std::uint8_t>& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (const auto b : bytes) {
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

nlohmann::json read_json(const std::filesystem::path& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

void check_valid(const std::filesystem::path& path, const nlohmann::json& expected) {
  const std::string file = path.filename().string();
  const ckptio::TorchFile pt(path);
  check(pt.folder() == expected["folder"], file + ": folder " + pt.folder());
  const auto& want = expected["tensors"];
  check(pt.tensors().size() == want.size(),
        file + ": " + std::to_string(pt.tensors().size()) + " tensors, expected " + std::to_string(want.size()));
  for (std::size_t i = 0; i < std::min(want.size(), pt.tensors().size()); ++i) {
    const auto& t = pt.tensors()[i];
    const std::string where = file + ": tensor " + std::to_string(i) + " '" + t.name + "'";
    check(t.name == want[i]["name"], where + ": expected name " + want[i]["name"].get<std::string>());
    check(std::string(ckptio::dtype_name(t.dtype)) == want[i]["dtype"], where + ": dtype");
    check(nlohmann::json(t.shape) == want[i]["shape"], where + ": shape");
    const std::vector<std::uint8_t> bytes = pt.read(i);
    check(bytes.size() == t.bytes, where + ": read size");
    check(hex(bytes) == want[i]["hex"], where + ": values " + hex(bytes) + " expected " + want[i]["hex"].dump());
    // A range from the middle reads the same bytes as the whole tensor has there.
    const std::int64_t n = t.elements();
    if (n >= 3) {
      const std::size_t es = ckptio::dtype_size(t.dtype);
      std::vector<std::uint8_t> middle(static_cast<std::size_t>(n - 2) * es);
      pt.read_elements(i, 1, n - 1, middle.data());
      check(std::equal(middle.begin(), middle.end(), bytes.begin() + static_cast<std::ptrdiff_t>(es)),
            where + ": read_elements(1, n-1)");
    }
  }
  nlohmann::json values = nlohmann::json::object();
  for (const auto& [key, value] : pt.values()) values[key] = value;
  check(values == expected["values"], file + ": values " + values.dump() + " expected " + expected["values"].dump());
}

void check_hostile(const std::filesystem::path& path, const std::string& message, const std::filesystem::path& dir) {
  const std::string want = path.string() + ": " + message;
  try {
    const ckptio::TorchFile pt(path);
    check(false, path.filename().string() + ": read without an error");
  } catch (const ckptio::FormatError& e) {
    check(std::string(e.what()).rfind(want, 0) == 0,
          path.filename().string() + ": error '" + e.what() + "' does not start with '" + want + "'");
  }
  check(!std::filesystem::exists(dir / "EXECUTED"), "something in " + path.filename().string() + " was executed");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: pt_interop_check DIR\n";
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  try {
    const auto expected = read_json(dir / "expected.json");
    for (const auto& [file, want] : expected.items()) check_valid(dir / file, want);
    const auto hostile = read_json(dir / "hostile.json");
    for (const auto& [file, message] : hostile.items()) check_hostile(dir / file, message.get<std::string>(), dir);
    std::cout << expected.size() << " files read, " << hostile.size() << " hostile files refused, " << failures
              << " failures\n";
  } catch (const std::exception& e) {
    std::cerr << "FAIL: " << e.what() << '\n';
    return 1;
  }
  return failures == 0 ? 0 : 1;
}
