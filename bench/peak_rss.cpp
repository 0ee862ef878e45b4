#include "peak_rss.hpp"

#include <fstream>
#include <stdexcept>
#include <string>

namespace ckptio_bench {
namespace {

// The value of a "Key:   1234 kB" line of /proc/self/status, in bytes.
std::uint64_t status_bytes(const std::string& key) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind(key + ":", 0) == 0) return std::stoull(line.substr(key.size() + 1)) * 1024;
  throw std::runtime_error("/proc/self/status has no " + key);
}

}  // namespace

std::uint64_t resident_bytes() { return status_bytes("VmRSS"); }

PeakRss::PeakRss() {
  std::ofstream clear_refs("/proc/self/clear_refs");
  // "5" resets the peak resident set size to the current one.
  if (!(clear_refs << "5" << std::flush))
    throw std::runtime_error("cannot reset the peak resident memory (/proc/self/clear_refs)");
  start_bytes_ = status_bytes("VmHWM");
}

std::uint64_t PeakRss::peak_bytes() const { return status_bytes("VmHWM"); }

std::uint64_t PeakRss::extra_bytes() const {
  const std::uint64_t peak = peak_bytes();
  return peak > start_bytes_ ? peak - start_bytes_ : 0;
}

}  // namespace ckptio_bench
