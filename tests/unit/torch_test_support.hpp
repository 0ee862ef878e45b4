// Test helpers: build pickles opcode by opcode and stored zip archives (optionally ZIP64)
// in memory, to feed the .pt reader inputs that torch would never write.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ckptio::test {

class PickleBuilder {
 public:
  PickleBuilder() { raw("\x80\x02"); }
  PickleBuilder& raw(const std::string& bytes) {
    out_ += bytes;
    return *this;
  }
  PickleBuilder& op(char c) { return raw(std::string(1, c)); }
  PickleBuilder& mark() { return op('('); }
  PickleBuilder& str(const std::string& s) {
    op('X');
    le(s.size(), 4);
    return raw(s);
  }
  PickleBuilder& integer(std::int32_t i) {
    op('J');
    le(static_cast<std::uint32_t>(i), 4);
    return *this;
  }
  PickleBuilder& global(const std::string& module, const std::string& name) {
    return op('c').raw(module + "\n" + name + "\n");
  }
  // ('storage', torch.<storage_class>, key, 'cpu', numel) BINPERSID
  PickleBuilder& storage(const std::string& storage_class, const std::string& key, std::int32_t numel) {
    mark().str("storage").global("torch", storage_class).str(key).str("cpu").integer(numel).op('t');
    return op('Q');
  }
  PickleBuilder& int_tuple(const std::vector<std::int32_t>& values) {
    mark();
    for (const auto v : values) integer(v);
    return op('t');
  }
  // _rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())
  PickleBuilder& tensor(const std::string& storage_class, const std::string& key, std::int32_t numel,
                        std::int32_t offset, const std::vector<std::int32_t>& size,
                        const std::vector<std::int32_t>& stride) {
    global("torch._utils", "_rebuild_tensor_v2").mark();
    storage(storage_class, key, numel).integer(offset).int_tuple(size).int_tuple(stride);
    op('\x89').global("collections", "OrderedDict").op(')').op('R');
    return op('t').op('R');
  }
  std::string done() { return out_ + "."; }

 private:
  void le(std::uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out_ += static_cast<char>((v >> (8 * i)) & 0xFF);
  }
  std::string out_;
};

struct ZipSpec {
  struct Entry {
    std::string name;
    std::string data;
    std::uint16_t method = 0;
  };
  std::vector<Entry> entries;
  bool zip64 = false;  // sizes and offsets through ZIP64 extra fields and end records
  // Pads each local header's extra field (not the central directory's) so that entry data
  // starts on a multiple of this, as PyTorch 2 does (0: no padding).
  std::size_t align = 0;
};

std::string build_zip(const ZipSpec& spec);

}  // namespace ckptio::test
