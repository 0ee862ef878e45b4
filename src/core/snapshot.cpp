#include "ckptio/snapshot.hpp"

#include "ckptio/error.hpp"

namespace ckptio {

const std::optional<StateDict>& Snapshot::group(std::string_view name) const {
  if (name == "model") return model;
  if (name == "optimizer") return optimizer;
  if (name == "ema") return ema;
  throw UsageError("unknown group '" + std::string(name) + "' (expected model, optimizer or ema)");
}

}  // namespace ckptio
