// A weights-only unpickler for the data.pkl of a torch.save archive. It understands the
// pickle opcodes (protocol 2 and newer) that state dicts use and an explicit allow-list of
// globals (collections.OrderedDict, torch._utils._rebuild_tensor_v2/_rebuild_parameter and
// the torch storage classes). Any other global is refused with an error that names it, and
// nothing is ever imported or executed: the result is plain data.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckptio/dtype.hpp"
#include "ckptio/error.hpp"
#include "ckptio/shard.hpp"

namespace ckptio::detail::formats {

// A pickle that ends before its STOP (a legacy file's reader then tries a longer prefix).
class TruncatedPickle : public FormatError {
 public:
  using FormatError::FormatError;
};

// One tensor of the pickle: a view (offset, shape, stride in elements) into a storage that
// the archive holds as `<folder>/data/<storage_key>`.
struct PickledTensor {
  std::string name;  // dotted path from the top-level dict: "model.blocks.0.w"
  DType dtype = DType::F32;
  std::string storage_key;
  std::string location;                // "cpu", "cuda:0": where torch had the storage
  std::uint64_t storage_elements = 0;  // as declared by the pickle
  std::int64_t storage_offset = 0;
  Shape shape;
  std::vector<std::int64_t> stride;
};

struct PickledStorage {
  std::string key;
  DType dtype = DType::F32;
  std::uint64_t elements = 0;
};

struct PickledStateDict {
  std::vector<PickledTensor> tensors;    // in pickle order
  std::vector<PickledStorage> storages;  // every storage the pickle declares
  // Everything else, by dotted key: the largest sub-trees without tensors, as JSON.
  std::vector<std::pair<std::string, nlohmann::json>> values;
};

// The allow-listed globals, "module.name", for documentation and error messages.
const std::vector<std::string>& allowed_pickle_globals();

// Parses `pickle`; `label` names the input in error messages. Throws FormatError for
// anything outside the weights-only subset (an unknown global, opcode, a malformed stream,
// a view outside its storage, a top level that is not a dict).
PickledStateDict unpickle_state_dict(std::span<const std::uint8_t> pickle, const std::string& label);

// A legacy (PyTorch < 1.6, non-zip) torch.save file: five pickles in a row, then for each
// storage in `storage_keys` order an 8-byte little-endian element count and its bytes.
struct LegacyPickles {
  PickledStateDict state;
  std::vector<std::string> storage_keys;
  std::uint64_t data_offset = 0;  // where the first storage's element count starts
};

// True when `head` starts with the pickled magic number of a legacy torch.save file.
bool is_legacy_torch_file(std::span<const std::uint8_t> head);

// Parses the pickles at the start of a legacy file from `prefix` (the first bytes of the
// file). Throws FormatError; a "truncated pickle" error may mean `prefix` was too short.
LegacyPickles unpickle_legacy(std::span<const std::uint8_t> prefix, const std::string& label);

}  // namespace ckptio::detail::formats
