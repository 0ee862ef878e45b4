#include "formats/torch_pickle.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <deque>
#include <limits>
#include <memory>
#include <optional>
#include <unordered_map>

#include "ckptio/error.hpp"

namespace ckptio::detail::formats {
namespace {

// Nesting of containers when flattening; values nest at most this deep, so that any of them
// fits a running state's extras (kMaxJsonDepth levels in all).
constexpr std::size_t kMaxDepth = 100;
constexpr std::uint64_t kMaxVisits = 5'000'000;  // container entries walked when flattening
// What flattening may produce: a pickle that shares one container many times (memo GETs)
// describes a tree far larger than itself; these bound the tensors and values it becomes.
constexpr std::size_t kMaxEntries = 1'000'000;
constexpr std::uint64_t kMaxNameBytes = 64ull << 20;
constexpr std::size_t kMaxDims = 64;
constexpr std::size_t kMaxGlobalName = 256;
// Objects one pickle may create (a state dict needs about 20 per tensor): bounds the memory
// a hostile pickle can make the reader use, whatever its size.
constexpr std::size_t kMaxValues = 16'777'216;

enum class Kind { None, Bool, Int, Float, String, Bytes, List, Tuple, Dict, Global, Storage, Tensor };

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::None:
      return "None";
    case Kind::Bool:
      return "bool";
    case Kind::Int:
      return "int";
    case Kind::Float:
      return "float";
    case Kind::String:
      return "str";
    case Kind::Bytes:
      return "bytes";
    case Kind::List:
      return "list";
    case Kind::Tuple:
      return "tuple";
    case Kind::Dict:
      return "dict";
    case Kind::Global:
      return "global";
    case Kind::Storage:
      return "storage";
    case Kind::Tensor:
      return "tensor";
  }
  return "?";
}

// What an allow-listed global is.
enum class GlobalId { OrderedDict, RebuildTensorV2, RebuildParameter, Storage };

struct Value;
struct DictData {
  std::vector<std::pair<Value*, Value*>> items;
  std::unordered_map<std::string, std::size_t> index;  // hashable keys -> position in items
};

// Values live in the unpickler's arena and refer to each other by pointer, so shared and
// even cyclic references (which a hostile pickle can build) cost nothing to destroy.
struct Value {
  Kind kind = Kind::None;
  bool boolean = false;
  std::int64_t integer = 0;
  double real = 0;
  std::string text;           // String, Bytes; Global: "module.name"
  std::vector<Value*> items;  // List, Tuple
  std::unique_ptr<DictData> dict;
  GlobalId global = GlobalId::OrderedDict;
  DType dtype = DType::F32;  // Global(Storage): the storage's element type
  std::size_t ref = 0;       // Storage, Tensor: index into the unpickler's tables
};

struct StorageInfo {
  std::string key;
  DType dtype;
  std::string location;
  std::uint64_t elements;
  std::string class_name;
};

struct TensorInfo {
  std::size_t storage;
  std::int64_t offset;
  Shape shape;
  std::vector<std::int64_t> stride;
};

struct StorageClass {
  const char* module;
  const char* name;
  DType dtype;
};
constexpr StorageClass kStorageClasses[] = {
    {"torch", "DoubleStorage", DType::F64}, {"torch", "FloatStorage", DType::F32},
    {"torch", "HalfStorage", DType::F16},   {"torch", "BFloat16Storage", DType::BF16},
    {"torch", "LongStorage", DType::I64},   {"torch", "IntStorage", DType::I32},
    {"torch", "ShortStorage", DType::I16},  {"torch", "CharStorage", DType::I8},
    {"torch", "ByteStorage", DType::U8},    {"torch", "BoolStorage", DType::BOOL},
    {"torch", "UntypedStorage", DType::U8}, {"torch.storage", "UntypedStorage", DType::U8},
};

bool valid_utf8(const std::string& s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (s.size() - i <= n) return false;
    for (std::size_t k = 1; k <= n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

// The pickled magic number 0x1950a86a20f9469cfc6c (protocol 2) that starts a legacy file.
constexpr std::uint8_t kLegacyMagic[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
                                         0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e};

std::string join_ints(const std::vector<std::int64_t>& v) {
  std::string out = "[";
  for (std::size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + std::to_string(v[i]);
  return out + "]";
}

class Unpickler {
 public:
  Unpickler(std::span<const std::uint8_t> data, const std::string& label) : data_(data), label_(label) {}

  PickledStateDict run() {
    Value* root = parse();
    return finish(root);
  }

  // The pickles of a legacy torch.save file, in order: magic number, protocol version,
  // system info, the object, the sorted storage keys. The storages' bytes follow.
  LegacyPickles run_legacy() {
    if (data_.size() < sizeof(kLegacyMagic) || std::memcmp(data_.data(), kLegacyMagic, sizeof(kLegacyMagic)) != 0) {
      fail("not a legacy torch.save file (no magic number)");
    }
    pos_ = sizeof(kLegacyMagic);
    const Value* version = parse();
    if (version->kind != Kind::Int || version->integer != 1001) {
      fail("legacy torch.save protocol version is not 1001");
    }
    const Value* info = parse();
    bool little = false;
    if (info->kind == Kind::Dict) {
      for (const auto& [k, v] : info->dict->items) {
        if (k->kind == Kind::String && k->text == "little_endian") little = v->kind == Kind::Bool && v->boolean;
      }
    }
    if (!little) fail("big-endian .pt files are not supported (only little-endian)");
    legacy_ = true;
    Value* root = parse();
    const Value* keys = parse();
    LegacyPickles out;
    if (keys->kind != Kind::List) fail("the legacy storage key list is not a list");
    std::unordered_map<std::string, bool> seen;
    for (const Value* key : keys->items) {
      if (key->kind != Kind::String || !storage_index_.count(key->text)) {
        fail("the legacy storage key list names a storage the pickle does not use");
      }
      if (!seen.emplace(key->text, true).second) fail("the legacy storage key list names '" + key->text + "' twice");
      out.storage_keys.push_back(key->text);
    }
    if (out.storage_keys.size() != storages_.size()) fail("the legacy storage key list misses storages");
    out.data_offset = pos_;
    out.state = finish(root);
    return out;
  }

 private:
  std::span<const std::uint8_t> data_;
  const std::string& label_;
  std::size_t pos_ = 0;
  std::size_t op_pos_ = 0;
  std::deque<Value> arena_;
  std::vector<Value*> stack_;
  std::vector<std::size_t> marks_;
  std::unordered_map<std::uint64_t, Value*> memo_;
  std::vector<StorageInfo> storages_;
  std::unordered_map<std::string, std::size_t> storage_index_;
  std::vector<TensorInfo> tensors_;
  std::uint64_t visits_ = 0;
  std::size_t entries_ = 0;       // tensors and values flattened so far
  std::uint64_t name_bytes_ = 0;  // their dotted names
  bool legacy_ = false;           // persistent ids carry a sixth item, view metadata (None)
  std::unordered_map<const Value*, bool> has_tensor_cache_;
  std::unordered_map<const Value*, std::uint64_t> entry_count_cache_;

  [[noreturn]] void fail(const std::string& what) const { throw FormatError(label_ + ": " + what); }
  [[noreturn]] void fail_at(const std::string& what) const {
    fail(what + " (pickle offset " + std::to_string(op_pos_) + ")");
  }

  [[noreturn]] void truncated(const std::string& what) const {
    throw TruncatedPickle(label_ + ": " + what + " (pickle offset " + std::to_string(op_pos_) + ")");
  }

  Value* make(Kind kind) {
    if (arena_.size() >= kMaxValues) fail_at("the pickle creates more than " + std::to_string(kMaxValues) + " objects");
    arena_.emplace_back();
    Value* v = &arena_.back();
    v->kind = kind;
    if (kind == Kind::Dict) v->dict = std::make_unique<DictData>();
    return v;
  }

  PickledStateDict finish(Value* root) {
    if (root->kind != Kind::Dict) {
      fail("the top-level object is a " + std::string(kind_name(root->kind)) + ", expected a dict (a state dict)");
    }
    PickledStateDict out;
    // Counted first, so that a pickle sharing one container many times is refused before
    // the tree it describes is built.
    if (count_entries(root, 0) > kMaxEntries) fail_too_many_entries();
    flatten(root, "", 0, out);
    for (const StorageInfo& s : storages_) out.storages.push_back({s.key, s.dtype, s.elements});
    return out;
  }

  // ---- reading the stream ----
  const std::uint8_t* take(std::size_t n) {
    if (data_.size() - pos_ < n) truncated("truncated pickle");
    const std::uint8_t* p = data_.data() + pos_;
    pos_ += n;
    return p;
  }
  std::uint64_t read_le(std::size_t n) {
    const std::uint8_t* p = take(n);
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v |= static_cast<std::uint64_t>(p[i]) << (8 * i);
    return v;
  }
  std::string read_bytes(std::uint64_t n) {
    if (n > data_.size() - pos_) truncated("truncated pickle: a string of " + std::to_string(n) + " bytes");
    const std::uint8_t* p = take(static_cast<std::size_t>(n));
    return std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n));
  }
  std::string read_line() {
    std::string out;
    while (true) {
      const char c = static_cast<char>(*take(1));
      if (c == '\n') return out;
      if (out.size() >= kMaxGlobalName) fail_at("a GLOBAL name is longer than " + std::to_string(kMaxGlobalName));
      out += c;
    }
  }

  // ---- the stack ----
  std::size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  Value* pop() {
    if (stack_.size() <= floor()) fail_at("pickle stack underflow");
    Value* v = stack_.back();
    stack_.pop_back();
    return v;
  }
  Value* top() {
    if (stack_.size() <= floor()) fail_at("pickle stack underflow");
    return stack_.back();
  }
  std::vector<Value*> pop_mark() {
    if (marks_.empty()) fail_at("pickle MARK missing");
    const std::size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Value*> items(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  void push(Value* v) { stack_.push_back(v); }

  Value* make_int(std::int64_t i) {
    Value* v = make(Kind::Int);
    v->integer = i;
    return v;
  }
  Value* make_string(std::string s, Kind kind) {
    if (kind == Kind::String && !valid_utf8(s)) fail_at("a string is not valid UTF-8");
    Value* v = make(kind);
    v->text = std::move(s);
    return v;
  }
  Value* make_tuple(std::vector<Value*> items) {
    Value* v = make(Kind::Tuple);
    v->items = std::move(items);
    return v;
  }

  // Two's-complement little-endian integer of n bytes (LONG1/LONG4).
  std::int64_t read_long(std::uint64_t n) {
    if (n > 8) fail_at("an integer of " + std::to_string(n) + " bytes does not fit in 64 bits");
    if (n == 0) return 0;
    std::uint64_t u = read_le(static_cast<std::size_t>(n));
    if (n < 8 && (u >> (8 * n - 1)) & 1) u |= ~0ULL << (8 * n);  // sign-extend
    return static_cast<std::int64_t>(u);
  }

  static std::optional<std::string> hash_key(const Value* k) {
    switch (k->kind) {
      case Kind::String:
        return "s" + k->text;
      case Kind::Int:
        return "i" + std::to_string(k->integer);
      case Kind::Bool:
        return "i" + std::to_string(k->boolean ? 1 : 0);
      case Kind::None:
        return std::string("n");
      default:
        return std::nullopt;
    }
  }
  void set_item(Value* dict, Value* key, Value* value) {
    if (dict->kind != Kind::Dict) fail_at("SETITEM on a " + std::string(kind_name(dict->kind)));
    DictData& d = *dict->dict;
    if (const auto h = hash_key(key)) {
      const auto [it, inserted] = d.index.emplace(*h, d.items.size());
      if (!inserted) {
        d.items[it->second].second = value;
        return;
      }
    }
    d.items.emplace_back(key, value);
  }

  Value* global(const std::string& module, const std::string& name) {
    Value* v = make(Kind::Global);
    v->text = module + "." + name;
    if (module == "collections" && name == "OrderedDict") {
      v->global = GlobalId::OrderedDict;
      return v;
    }
    if (module == "torch._utils" && name == "_rebuild_tensor_v2") {
      v->global = GlobalId::RebuildTensorV2;
      return v;
    }
    if (module == "torch._utils" && name == "_rebuild_parameter") {
      v->global = GlobalId::RebuildParameter;
      return v;
    }
    for (const auto& sc : kStorageClasses) {
      if (module == sc.module && name == sc.name) {
        v->global = GlobalId::Storage;
        v->dtype = sc.dtype;
        return v;
      }
    }
    fail_at("refusing global '" + v->text + "': it is not on the weights-only allow-list");
  }

  std::int64_t as_int(const Value* v, const char* what) {
    if (v->kind != Kind::Int) fail_at(std::string(what) + " must be an int, got a " + kind_name(v->kind));
    return v->integer;
  }
  std::vector<std::int64_t> as_int_tuple(const Value* v, const char* what) {
    if (v->kind != Kind::Tuple && v->kind != Kind::List) {
      fail_at(std::string(what) + " must be a tuple of ints, got a " + kind_name(v->kind));
    }
    if (v->items.size() > kMaxDims) fail_at(std::string(what) + " has more than 64 dimensions");
    std::vector<std::int64_t> out;
    for (const Value* item : v->items) {
      const std::int64_t i = as_int(item, what);
      if (i < 0) fail_at(std::string(what) + " has a negative entry " + std::to_string(i));
      out.push_back(i);
    }
    return out;
  }

  // persistent_load: ('storage', <storage class>, key, location, numel)
  Value* persistent_load(Value* pid) {
    if (pid->kind != Kind::Tuple || pid->items.size() != (legacy_ ? 6u : 5u) || pid->items[0]->kind != Kind::String ||
        pid->items[0]->text != "storage") {
      fail_at(legacy_ ? "a persistent id is not ('storage', type, key, location, size, view)"
                      : "a persistent id is not ('storage', type, key, location, size)");
    }
    if (legacy_ && pid->items[5]->kind != Kind::None) fail_at("legacy storage views are not supported");
    const Value* type = pid->items[1];
    if (type->kind != Kind::Global || type->global != GlobalId::Storage) {
      fail_at("a persistent id names a " + std::string(kind_name(type->kind)) +
              (type->kind == Kind::Global ? " '" + type->text + "'" : std::string()) + " instead of a storage class");
    }
    const Value* key = pid->items[2];
    const Value* location = pid->items[3];
    if (key->kind != Kind::String) fail_at("a storage key must be a str");
    if (key->text.empty() || key->text.size() > 64 || key->text.find_first_of("/\\") != std::string::npos ||
        key->text == "." || key->text == "..") {
      fail_at("storage key '" + key->text.substr(0, 64) + "' is not a plain name");
    }
    if (location->kind != Kind::String) fail_at("a storage location must be a str");
    const std::int64_t numel = as_int(pid->items[4], "a storage size");
    if (numel < 0) fail_at("storage '" + key->text + "' has a negative size");
    const auto elements = static_cast<std::uint64_t>(numel);
    if (elements > std::numeric_limits<std::uint64_t>::max() / dtype_size(type->dtype)) {
      fail_at("storage '" + key->text + "' declares " + std::to_string(elements) + " elements: too large");
    }
    const auto [it, inserted] = storage_index_.emplace(key->text, storages_.size());
    if (inserted) {
      storages_.push_back({key->text, type->dtype, location->text, elements, type->text});
    } else {
      const StorageInfo& s = storages_[it->second];
      if (s.dtype != type->dtype || s.elements != elements) {
        fail_at("storage '" + key->text + "' is declared twice with different types or sizes");
      }
    }
    Value* v = make(Kind::Storage);
    v->ref = it->second;
    return v;
  }

  Value* rebuild_tensor(const std::vector<Value*>& args) {
    if (args.size() < 6 || args.size() > 7) fail_at("_rebuild_tensor_v2 takes 6 or 7 arguments");
    if (args[0]->kind != Kind::Storage) {
      fail_at("_rebuild_tensor_v2 needs a storage, got a " + std::string(kind_name(args[0]->kind)));
    }
    const StorageInfo& storage = storages_[args[0]->ref];
    TensorInfo t;
    t.storage = args[0]->ref;
    t.offset = as_int(args[1], "a storage offset");
    if (t.offset < 0) fail_at("a storage offset is negative");
    t.shape = as_int_tuple(args[2], "a tensor size");
    t.stride = as_int_tuple(args[3], "a tensor stride");
    if (t.shape.size() != t.stride.size()) fail_at("a tensor's size and stride have different lengths");
    if (args[4]->kind != Kind::Bool) fail_at("requires_grad must be a bool");
    if (args[5]->kind != Kind::Dict) fail_at("backward_hooks must be an (empty) OrderedDict");
    // The view must stay inside its storage: last element = offset + sum((size-1)*stride).
    std::uint64_t elements = 1;
    std::uint64_t last = static_cast<std::uint64_t>(t.offset);
    bool empty = false;
    for (std::size_t d = 0; d < t.shape.size(); ++d) {
      const auto n = static_cast<std::uint64_t>(t.shape[d]);
      if (n == 0) empty = true;
      if (n != 0 && elements > std::numeric_limits<std::uint64_t>::max() / n) fail_at("a tensor size overflows");
      elements *= n;
    }
    if (!empty) {
      for (std::size_t d = 0; d < t.shape.size(); ++d) {
        const auto n = static_cast<std::uint64_t>(t.shape[d]) - 1;
        const auto s = static_cast<std::uint64_t>(t.stride[d]);
        if (n != 0 && s > (std::numeric_limits<std::uint64_t>::max() - last) / n) fail_at("a tensor view overflows");
        last += n * s;
      }
    }
    if (empty ? static_cast<std::uint64_t>(t.offset) > storage.elements : last >= storage.elements) {
      fail_at("a tensor view (offset " + std::to_string(t.offset) + ", size " + join_ints(t.shape) + ", stride " +
              join_ints(t.stride) + ") reaches past the end of storage '" + storage.key + "' (" +
              std::to_string(storage.elements) + " elements)");
    }
    // Its bytes must fit in an int64 too (a stride-0 view can be far larger than its storage).
    if (elements > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) / dtype_size(storage.dtype)) {
      fail_at("a tensor is too large");
    }
    tensors_.push_back(std::move(t));
    Value* v = make(Kind::Tensor);
    v->ref = tensors_.size() - 1;
    return v;
  }

  Value* call(Value* callable, Value* args) {
    if (callable->kind != Kind::Global) fail_at("REDUCE on a " + std::string(kind_name(callable->kind)));
    if (args->kind != Kind::Tuple) fail_at("REDUCE arguments are not a tuple");
    const auto& a = args->items;
    switch (callable->global) {
      case GlobalId::OrderedDict: {
        Value* d = make(Kind::Dict);
        if (a.empty()) return d;
        if (a.size() != 1 || (a[0]->kind != Kind::List && a[0]->kind != Kind::Tuple)) {
          fail_at("OrderedDict takes no argument or a list of pairs");
        }
        for (Value* pair : a[0]->items) {
          if ((pair->kind != Kind::Tuple && pair->kind != Kind::List) || pair->items.size() != 2) {
            fail_at("OrderedDict takes a list of pairs");
          }
          set_item(d, pair->items[0], pair->items[1]);
        }
        return d;
      }
      case GlobalId::RebuildTensorV2:
        return rebuild_tensor(a);
      case GlobalId::RebuildParameter:
        if (a.size() != 3 || a[0]->kind != Kind::Tensor) fail_at("_rebuild_parameter takes (tensor, bool, hooks)");
        return a[0];
      case GlobalId::Storage:
        break;
    }
    fail_at("refusing to call '" + callable->text + "'");
  }

  // ---- the opcodes, by what they do (parse() dispatches; each returns false for an opcode not its own) ----

  // None, booleans, integers, floats, strings and bytes.
  bool push_literal(std::uint8_t op) {
    switch (op) {
      case 'N':
        push(make(Kind::None));
        return true;
      case 0x88:
      case 0x89: {  // NEWTRUE, NEWFALSE
        Value* v = make(Kind::Bool);
        v->boolean = op == 0x88;
        push(v);
        return true;
      }
      case 'J':  // BININT
        push(make_int(static_cast<std::int32_t>(static_cast<std::uint32_t>(read_le(4)))));
        return true;
      case 'K':  // BININT1
        push(make_int(static_cast<std::int64_t>(read_le(1))));
        return true;
      case 'M':  // BININT2
        push(make_int(static_cast<std::int64_t>(read_le(2))));
        return true;
      case 0x8a:  // LONG1
        push(make_int(read_long(read_le(1))));
        return true;
      case 0x8b:  // LONG4
        push(make_int(read_long(read_le(4))));
        return true;
      case 'G': {  // BINFLOAT (big-endian)
        const std::uint8_t* p = take(8);
        std::uint64_t u = 0;
        for (int i = 0; i < 8; ++i) u = (u << 8) | p[i];
        Value* v = make(Kind::Float);
        v->real = std::bit_cast<double>(u);
        push(v);
        return true;
      }
      case 'X':  // BINUNICODE
        push(make_string(read_bytes(read_le(4)), Kind::String));
        return true;
      case 0x8c:  // SHORT_BINUNICODE
        push(make_string(read_bytes(read_le(1)), Kind::String));
        return true;
      case 0x8d:  // BINUNICODE8
        push(make_string(read_bytes(read_le(8)), Kind::String));
        return true;
      case 'T':  // BINSTRING
        push(make_string(read_bytes(read_le(4)), Kind::String));
        return true;
      case 'U':  // SHORT_BINSTRING
        push(make_string(read_bytes(read_le(1)), Kind::String));
        return true;
      case 'B':  // BINBYTES
        push(make_string(read_bytes(read_le(4)), Kind::Bytes));
        return true;
      case 'C':  // SHORT_BINBYTES
        push(make_string(read_bytes(read_le(1)), Kind::Bytes));
        return true;
      case 0x8e:  // BINBYTES8
        push(make_string(read_bytes(read_le(8)), Kind::Bytes));
        return true;
      default:
        return false;
    }
  }
  // Tuples, lists and dicts, and the opcodes that fill them.
  bool build_container(std::uint8_t op) {
    switch (op) {
      case ')':
        push(make(Kind::Tuple));
        return true;
      case 't':
        push(make_tuple(pop_mark()));
        return true;
      case 0x85:
      case 0x86:
      case 0x87: {  // TUPLE1..3
        std::vector<Value*> items(static_cast<std::size_t>(op - 0x84));
        for (std::size_t i = items.size(); i-- > 0;) items[i] = pop();
        push(make_tuple(std::move(items)));
        return true;
      }
      case ']':
        push(make(Kind::List));
        return true;
      case 'l': {
        Value* v = make(Kind::List);
        v->items = pop_mark();
        push(v);
        return true;
      }
      case 'a': {  // APPEND
        Value* item = pop();
        Value* list = top();
        if (list->kind != Kind::List) fail_at("APPEND to a " + std::string(kind_name(list->kind)));
        list->items.push_back(item);
        return true;
      }
      case 'e': {  // APPENDS
        std::vector<Value*> items = pop_mark();
        Value* list = top();
        if (list->kind != Kind::List) fail_at("APPENDS to a " + std::string(kind_name(list->kind)));
        list->items.insert(list->items.end(), items.begin(), items.end());
        return true;
      }
      case '}':
        push(make(Kind::Dict));
        return true;
      case 'd': {  // DICT
        std::vector<Value*> items = pop_mark();
        if (items.size() % 2 != 0) fail_at("DICT with an odd number of items");
        Value* d = make(Kind::Dict);
        for (std::size_t i = 0; i < items.size(); i += 2) set_item(d, items[i], items[i + 1]);
        push(d);
        return true;
      }
      case 's': {  // SETITEM
        Value* value = pop();
        Value* key = pop();
        set_item(top(), key, value);
        return true;
      }
      case 'u': {  // SETITEMS
        std::vector<Value*> items = pop_mark();
        if (items.size() % 2 != 0) fail_at("SETITEMS with an odd number of items");
        Value* d = top();
        for (std::size_t i = 0; i < items.size(); i += 2) set_item(d, items[i], items[i + 1]);
        return true;
      }
      default:
        return false;
    }
  }
  // The memo: values stored by index and fetched again.
  bool use_memo(std::uint8_t op) {
    switch (op) {
      case 'q':  // BINPUT
        memo_[read_le(1)] = top();
        return true;
      case 'r':  // LONG_BINPUT
        memo_[read_le(4)] = top();
        return true;
      case 0x94:  // MEMOIZE
        memo_[memo_.size()] = top();
        return true;
      case 'h':
      case 'j': {  // BINGET, LONG_BINGET
        const std::uint64_t index = read_le(op == 'h' ? 1 : 4);
        const auto it = memo_.find(index);
        if (it == memo_.end()) fail_at("memo entry " + std::to_string(index) + " is not defined");
        push(it->second);
        return true;
      }
      default:
        return false;
    }
  }
  // Globals, persistent ids (tensor storages), calls and object state: only what a weights-only state dict uses.
  bool build_object(std::uint8_t op) {
    switch (op) {
      case 'c': {  // GLOBAL
        std::string module = read_line();
        std::string name = read_line();
        push(global(module, name));
        return true;
      }
      case 0x93: {  // STACK_GLOBAL
        Value* name = pop();
        Value* module = pop();
        if (name->kind != Kind::String || module->kind != Kind::String) fail_at("STACK_GLOBAL needs two strings");
        push(global(module->text, name->text));
        return true;
      }
      case 'Q': {  // BINPERSID
        push(persistent_load(pop()));
        return true;
      }
      case 'R': {  // REDUCE
        Value* args = pop();
        Value* callable = pop();
        push(call(callable, args));
        return true;
      }
      case 0x81: {  // NEWOBJ: cls.__new__(cls, *args)
        Value* args = pop();
        Value* cls = pop();
        if (cls->kind != Kind::Global || cls->global != GlobalId::OrderedDict || args->kind != Kind::Tuple ||
            !args->items.empty()) {
          fail_at("NEWOBJ is only allowed for OrderedDict()");
        }
        push(make(Kind::Dict));
        return true;
      }
      case 'b': {  // BUILD: obj.__setstate__(state)
        Value* state = pop();
        Value* obj = top();
        // An nn.Module state_dict is an OrderedDict whose state carries `_metadata`
        // (module versions): not a tensor, not needed to load the weights.
        if (obj->kind != Kind::Dict && obj->kind != Kind::Tensor) {
          fail_at("BUILD on a " + std::string(kind_name(obj->kind)) + " is not allowed");
        }
        if (state->kind != Kind::Dict && state->kind != Kind::Tuple && state->kind != Kind::None) {
          fail_at("BUILD with a " + std::string(kind_name(state->kind)) + " state is not allowed");
        }
        return true;
      }
      default:
        return false;
    }
  }
  [[noreturn]] void unsupported_opcode(std::uint8_t op) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02x", op);
    fail_at(std::string("unsupported pickle opcode ") + hex + " (not used by weights-only state dicts)");
  }

  Value* parse() {
    if (data_.size() - pos_ < 2 || data_[pos_] != 0x80) {
      op_pos_ = pos_;
      if (data_.size() - pos_ < 2 && (pos_ == data_.size() || data_[pos_] == 0x80)) truncated("truncated pickle");
      fail_at("the pickle does not start with a protocol 2+ header");
    }
    while (true) {
      op_pos_ = pos_;
      const std::uint8_t op = *take(1);
      if (push_literal(op) || build_container(op) || use_memo(op) || build_object(op)) continue;
      switch (op) {
        case 0x80: {  // PROTO
          const std::uint8_t proto = *take(1);
          if (proto < 2 || proto > 5) fail_at("pickle protocol " + std::to_string(proto) + " is not supported");
          break;
        }
        case 0x95:  // FRAME: a hint only
          take(8);
          break;
        case '.': {  // STOP
          if (!marks_.empty()) fail_at("the pickle ends inside a MARK");
          return pop();
        }
        case '(':  // MARK
          marks_.push_back(stack_.size());
          break;
        case '0':  // POP
          pop();
          break;
        case '1':  // POP_MARK
          pop_mark();
          break;
        case '2':  // DUP
          push(top());
          break;
        default:
          unsupported_opcode(op);
      }
    }
  }

  // ---- flattening to dotted names ----
  bool has_tensor(const Value* v, std::size_t depth) {
    if (v->kind == Kind::Tensor) return true;
    if (v->kind != Kind::List && v->kind != Kind::Tuple && v->kind != Kind::Dict) return false;
    if (depth > kMaxDepth) fail("the pickle nests containers deeper than " + std::to_string(kMaxDepth) + " levels");
    if (const auto it = has_tensor_cache_.find(v); it != has_tensor_cache_.end()) return it->second;
    bool found = false;
    if (v->kind == Kind::Dict) {
      for (const auto& [k, item] : v->dict->items) {
        count_visit();
        if (has_tensor(item, depth + 1)) {
          found = true;
          break;
        }
      }
    } else {
      for (const Value* item : v->items) {
        count_visit();
        if (has_tensor(item, depth + 1)) {
          found = true;
          break;
        }
      }
    }
    has_tensor_cache_[v] = found;
    return found;
  }
  void count_visit() {
    if (++visits_ > kMaxVisits) fail("the pickle's object graph is too large to flatten");
  }

  std::string key_text(const Value* k, const std::string& where) {
    switch (k->kind) {
      case Kind::String:
        return k->text;
      case Kind::Int:
        return std::to_string(k->integer);
      case Kind::Bool:
        return k->boolean ? "True" : "False";
      case Kind::None:
        return "None";
      default:
        fail("a dict key at '" + where + "' is a " + kind_name(k->kind) + "; only str and int keys are supported");
    }
  }

  nlohmann::json to_json(const Value* v, const std::string& where, std::size_t depth) {
    if (depth > kMaxDepth) fail("the pickle nests containers deeper than " + std::to_string(kMaxDepth) + " levels");
    count_visit();
    switch (v->kind) {
      case Kind::None:
        return nullptr;
      case Kind::Bool:
        return v->boolean;
      case Kind::Int:
        return v->integer;
      case Kind::Float:
        return v->real;
      case Kind::String:
        return v->text;
      case Kind::Bytes:
        return nlohmann::json::binary(std::vector<std::uint8_t>(v->text.begin(), v->text.end()));
      case Kind::List:
      case Kind::Tuple: {
        nlohmann::json out = nlohmann::json::array();
        for (const Value* item : v->items) out.push_back(to_json(item, where, depth + 1));
        return out;
      }
      case Kind::Dict: {
        nlohmann::json out = nlohmann::json::object();
        for (const auto& [k, item] : v->dict->items) out[key_text(k, where)] = to_json(item, where, depth + 1);
        return out;
      }
      case Kind::Global:
      case Kind::Storage:
      case Kind::Tensor:
        break;
    }
    fail("a " + std::string(kind_name(v->kind)) + (v->kind == Kind::Global ? " '" + v->text + "'" : std::string()) +
         " at '" + where + "' is not a tensor or a plain value");
  }

  [[noreturn]] void fail_too_many_entries() const {
    fail("the pickle flattens to more than " + std::to_string(kMaxEntries) + " tensors and values (or " +
         std::to_string(kMaxNameBytes >> 20) + " MiB of names): a container shared too many times?");
  }

  void count_entry(const std::string& name) {
    name_bytes_ += name.size();
    if (++entries_ > kMaxEntries || name_bytes_ > kMaxNameBytes) fail_too_many_entries();
  }

  // How many tensors and values flatten() makes of `v`, without making them: each shared
  // container is counted once (memoised), sums saturate past kMaxEntries.
  std::uint64_t count_entries(const Value* v, std::size_t depth) {
    const bool container = v->kind == Kind::Dict || v->kind == Kind::List || v->kind == Kind::Tuple;
    if (!container || !(depth == 0 || has_tensor(v, depth))) return 1;
    if (const auto it = entry_count_cache_.find(v); it != entry_count_cache_.end()) return it->second;
    std::uint64_t total = 0;
    auto add = [&](const Value* item) {
      total = std::min<std::uint64_t>(total + count_entries(item, depth + 1), kMaxEntries + 1);
    };
    if (v->kind == Kind::Dict) {
      for (const auto& [k, item] : v->dict->items) add(item);
    } else {
      for (const Value* item : v->items) add(item);
    }
    entry_count_cache_[v] = total;
    return total;
  }

  void flatten(const Value* v, const std::string& name, std::size_t depth, PickledStateDict& out) {
    if (depth > kMaxDepth) fail("the pickle nests containers deeper than " + std::to_string(kMaxDepth) + " levels");
    const auto child = [&](const std::string& key) { return name.empty() ? key : name + "." + key; };
    if (v->kind == Kind::Tensor) {
      count_entry(name);
      const TensorInfo& t = tensors_[v->ref];
      const StorageInfo& s = storages_[t.storage];
      out.tensors.push_back({name, s.dtype, s.key, s.location, s.elements, t.offset, t.shape, t.stride});
    } else if (v->kind == Kind::Dict && (depth == 0 || has_tensor(v, depth))) {
      for (const auto& [k, item] : v->dict->items) {
        count_visit();
        flatten(item, child(key_text(k, name)), depth + 1, out);
      }
    } else if ((v->kind == Kind::List || v->kind == Kind::Tuple) && has_tensor(v, depth)) {
      for (std::size_t i = 0; i < v->items.size(); ++i) {
        count_visit();
        flatten(v->items[i], child(std::to_string(i)), depth + 1, out);
      }
    } else {
      count_entry(name);
      out.values.emplace_back(name, to_json(v, name, depth));
    }
  }
};

}  // namespace

const std::vector<std::string>& allowed_pickle_globals() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out = {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2",
                                    "torch._utils._rebuild_parameter"};
    for (const auto& sc : kStorageClasses) out.push_back(std::string(sc.module) + "." + sc.name);
    return out;
  }();
  return names;
}

PickledStateDict unpickle_state_dict(std::span<const std::uint8_t> pickle, const std::string& label) {
  return Unpickler(pickle, label).run();
}

LegacyPickles unpickle_legacy(std::span<const std::uint8_t> prefix, const std::string& label) {
  return Unpickler(prefix, label).run_legacy();
}

bool is_legacy_torch_file(std::span<const std::uint8_t> head) {
  return head.size() >= sizeof(kLegacyMagic) && std::memcmp(head.data(), kLegacyMagic, sizeof(kLegacyMagic)) == 0;
}

}  // namespace ckptio::detail::formats
