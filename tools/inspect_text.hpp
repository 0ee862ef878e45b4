// ckptio tool: the human-readable report of `ckptio inspect`.
#pragma once

#include <ostream>

#include "ckptio/inspect.hpp"

namespace ckptio::tool {

// Prints provenance, running state (large JSON values summarised), rank blobs, every
// tensor and the totals.
void print_inspect_text(const ckptio::ContainerInfo& info, std::ostream& out);

}  // namespace ckptio::tool
