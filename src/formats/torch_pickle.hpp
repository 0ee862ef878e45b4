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
#include "ckptio/shard.hpp"

namespace ckptio::detail::formats {

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

struct PickledStateDict {
  std::vector<PickledTensor> tensors;  // in pickle order
  // Everything else, by dotted key: the largest sub-trees without tensors, as JSON.
  std::vector<std::pair<std::string, nlohmann::json>> values;
};

// The allow-listed globals, "module.name", for documentation and error messages.
const std::vector<std::string>& allowed_pickle_globals();

// Parses `pickle`; `label` names the input in error messages. Throws FormatError for
// anything outside the weights-only subset (an unknown global, opcode, a malformed stream,
// a view outside its storage, a top level that is not a dict).
PickledStateDict unpickle_state_dict(std::span<const std::uint8_t> pickle, const std::string& label);

}  // namespace ckptio::detail::formats
