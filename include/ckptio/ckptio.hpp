// ckptio: the whole public API.
#pragma once

#include "ckptio/checkpoint_io.hpp"
#include "ckptio/dtype.hpp"
#include "ckptio/error.hpp"
#include "ckptio/inspect.hpp"
#include "ckptio/load_checkpoint.hpp"
#include "ckptio/load_options.hpp"
#include "ckptio/preemption_guard.hpp"
#include "ckptio/safetensors.hpp"
#include "ckptio/shard.hpp"
#include "ckptio/snapshot.hpp"
#include "ckptio/state_dict.hpp"
#include "ckptio/tensor_info.hpp"
#include "ckptio/torch_file.hpp"
#include "ckptio/verify.hpp"
#include "ckptio/version.hpp"
