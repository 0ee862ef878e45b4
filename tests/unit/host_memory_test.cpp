// Staging memory: 2 MiB aligned mappings with the huge-page hint, faulted in on request, and
// the streaming copy that fills them.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/host_memory.hpp"

namespace ckptio::detail {
namespace {

// How many pages of [pointer, pointer + bytes) are resident.
std::size_t resident_pages(void* pointer, std::size_t bytes) {
  const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> flags((bytes + page - 1) / page);
  EXPECT_EQ(mincore(pointer, bytes, flags.data()), 0);
  std::size_t resident = 0;
  for (unsigned char f : flags) resident += f & 1;
  return resident;
}

// The VmFlags line of the mapping that starts at `pointer` in /proc/self/smaps.
std::string vm_flags_of(void* pointer) {
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool in_mapping = false;
  while (std::getline(smaps, line)) {
    std::uintptr_t start = 0;
    std::istringstream head(line);
    if (line.find('-') != std::string::npos && (head >> std::hex >> start) && line.find(':') > line.find('-')) {
      in_mapping = start == reinterpret_cast<std::uintptr_t>(pointer);
      continue;
    }
    if (in_mapping && line.rfind("VmFlags:", 0) == 0) return line;
  }
  return "";
}

TEST(HostMemory, MappingIsHugePageAlignedAndFaultedInOnRequest) {
  const std::size_t bytes = 3 * kHugePageBytes + 12345;
  void* p = map_host_pages(bytes, false);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % kHugePageBytes, 0u);
  EXPECT_EQ(resident_pages(p, bytes), 0u);                                     // nothing touched yet
  EXPECT_EQ(vm_flags_of(p).find(" hg"), std::string::npos) << vm_flags_of(p);  // no huge-page advice
  fault_in_pages(p, bytes);
  const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  EXPECT_EQ(resident_pages(p, bytes), (bytes + page - 1) / page);
  EXPECT_EQ(static_cast<unsigned char*>(p)[bytes - 1], 0);  // fresh pages read as zero
  unmap_host_pages(p, bytes);
}

TEST(HostMemory, HugePagesAreAdvisedWhenAsked) {
  if (!std::ifstream("/sys/kernel/mm/transparent_hugepage/enabled"))
    GTEST_SKIP() << "this kernel has no transparent huge pages";
  const std::size_t bytes = 2 * kHugePageBytes;
  void* p = map_host_pages(bytes, true);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % kHugePageBytes, 0u);
  EXPECT_NE(vm_flags_of(p).find(" hg"), std::string::npos) << vm_flags_of(p);  // MADV_HUGEPAGE recorded
  fault_in_pages(p, bytes);
  const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  EXPECT_EQ(resident_pages(p, bytes), bytes / page);
  unmap_host_pages(p, bytes);
}

TEST(HostMemory, FaultingInKeepsContents) {
  const std::size_t bytes = kHugePageBytes;
  auto* p = static_cast<unsigned char*>(map_host_pages(bytes, false));
  std::memset(p, 0xA5, bytes / 2);
  fault_in_pages(p, bytes);
  EXPECT_EQ(p[0], 0xA5);
  EXPECT_EQ(p[bytes / 2 - 1], 0xA5);
  EXPECT_EQ(p[bytes / 2], 0);
  unmap_host_pages(p, bytes);
}

TEST(HostMemory, StreamingCopyEqualsMemcpyForEverySizeAndSourceOffset) {
  const std::size_t big = (std::size_t{1} << 20) + 77;  // above the streaming threshold, odd tail
  std::vector<unsigned char> source(big + 64);
  for (std::size_t i = 0; i < source.size(); ++i) source[i] = static_cast<unsigned char>(i * 131 + 7);
  void* destination = map_host_pages(big + 64, false);
  for (std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{4096}, std::size_t{256} << 10, big})
    for (std::size_t offset : {0, 1, 13}) {
      std::memset(destination, 0, big + 64);
      copy_streaming(destination, source.data() + offset, size);
      EXPECT_EQ(std::memcmp(destination, source.data() + offset, size), 0) << size << " bytes from +" << offset;
      EXPECT_EQ(static_cast<unsigned char*>(destination)[size], 0) << "wrote past the end";
    }
  unmap_host_pages(destination, big + 64);
}

}  // namespace
}  // namespace ckptio::detail
