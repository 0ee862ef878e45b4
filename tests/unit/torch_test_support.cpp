#include "torch_test_support.hpp"

#include "formats/zip_reader.hpp"

namespace ckptio::test {
namespace {

void le(std::string& out, std::uint64_t v, int n) {
  for (int i = 0; i < n; ++i) out += static_cast<char>((v >> (8 * i)) & 0xFF);
}

}  // namespace

std::string build_zip(const ZipSpec& spec) {
  std::string out;
  std::string central;
  for (const auto& e : spec.entries) {
    const std::uint64_t offset = out.size();
    const auto crc = detail::formats::crc32(reinterpret_cast<const std::uint8_t*>(e.data.data()), e.data.size());
    le(out, 0x04034b50, 4);
    le(out, 20, 2);
    le(out, 0, 2);
    le(out, e.method, 2);
    le(out, 0, 4);
    le(out, crc, 4);
    le(out, e.data.size(), 4);
    le(out, e.data.size(), 4);
    le(out, e.name.size(), 2);
    std::string local_extra;
    if (spec.align > 0) {
      const std::size_t unpadded = out.size() + 2 + e.name.size() + 4;
      const std::size_t pad = (spec.align - unpadded % spec.align) % spec.align;
      le(local_extra, 0x4246, 2);  // "FB", the id PyTorch uses
      le(local_extra, pad, 2);
      local_extra += std::string(pad, 'Z');
    }
    le(out, local_extra.size(), 2);
    out += e.name;
    out += local_extra;
    out += e.data;

    std::string extra;
    if (spec.zip64) {
      le(extra, 0x0001, 2);
      le(extra, 24, 2);
      le(extra, e.data.size(), 8);
      le(extra, e.data.size(), 8);
      le(extra, offset, 8);
    }
    const std::uint64_t f32 = spec.zip64 ? 0xFFFFFFFF : 0;
    le(central, 0x02014b50, 4);
    le(central, 45, 2);
    le(central, 45, 2);
    le(central, 0, 2);
    le(central, e.method, 2);
    le(central, 0, 4);
    le(central, crc, 4);
    le(central, spec.zip64 ? f32 : e.data.size(), 4);
    le(central, spec.zip64 ? f32 : e.data.size(), 4);
    le(central, e.name.size(), 2);
    le(central, extra.size(), 2);
    le(central, 0, 2);
    le(central, 0, 2);
    le(central, 0, 2);
    le(central, 0, 4);
    le(central, spec.zip64 ? f32 : offset, 4);
    central += e.name;
    central += extra;
  }
  const std::uint64_t cd_offset = out.size();
  out += central;
  if (spec.zip64) {
    const std::uint64_t z64 = out.size();
    le(out, 0x06064b50, 4);
    le(out, 44, 8);
    le(out, 45, 2);
    le(out, 45, 2);
    le(out, 0, 4);
    le(out, 0, 4);
    le(out, spec.entries.size(), 8);
    le(out, spec.entries.size(), 8);
    le(out, central.size(), 8);
    le(out, cd_offset, 8);
    le(out, 0x07064b50, 4);
    le(out, 0, 4);
    le(out, z64, 8);
    le(out, 1, 4);
  }
  le(out, 0x06054b50, 4);
  le(out, 0, 2);
  le(out, 0, 2);
  le(out, spec.zip64 ? 0xFFFF : spec.entries.size(), 2);
  le(out, spec.zip64 ? 0xFFFF : spec.entries.size(), 2);
  le(out, spec.zip64 ? 0xFFFFFFFF : central.size(), 4);
  le(out, spec.zip64 ? 0xFFFFFFFF : cd_offset, 4);
  le(out, 0, 2);
  return out;
}

}  // namespace ckptio::test
