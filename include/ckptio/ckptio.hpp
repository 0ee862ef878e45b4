// ckptio: the whole public API.
#pragma once

#include "ckptio/checkpoint_io.hpp"
#include "ckptio/dtype.hpp"
#include "ckptio/error.hpp"
#include "ckptio/inspect.hpp"
#include "ckptio/shard.hpp"
#include "ckptio/snapshot.hpp"
#include "ckptio/state_dict.hpp"
#include "ckptio/verify.hpp"
#include "ckptio/version.hpp"
