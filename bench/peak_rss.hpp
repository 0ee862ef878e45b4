// Resident memory of this process and its peak over a stretch of code, from the kernel's
// own counters (/proc/self/status), so that no short-lived allocation between two samples
// is missed.
#pragma once

#include <cstdint>

namespace ckptio_bench {

// Bytes resident now (VmRSS).
std::uint64_t resident_bytes();

// Starts a measurement: resets the kernel's high-water mark of resident memory (VmHWM) to
// what is resident now (/proc/self/clear_refs, Linux 4.0 and later). Throws
// std::runtime_error where the kernel refuses.
class PeakRss {
 public:
  PeakRss();
  // Bytes by which the peak since construction exceeded what was resident at construction
  // (0 when it never did).
  std::uint64_t extra_bytes() const;
  // The peak since construction.
  std::uint64_t peak_bytes() const;

 private:
  std::uint64_t start_bytes_ = 0;
};

}  // namespace ckptio_bench
