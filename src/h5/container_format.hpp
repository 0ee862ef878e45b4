// Names and numbers of the container format (docs/FORMAT.md).
#pragma once

#include <cstdint>

namespace ckptio::detail::h5 {

inline constexpr const char* kFormatName = "ckptio";
// Version 1: the first format, one dataset per tensor.
// Version 2: small tensors packed into one byte dataset per group (kPackedGroup); written
// only when a container has packed tensors, so that a container without any still reads
// in ckptio versions that know version 1 only. A reader accepts versions 1..kFormatVersion.
inline constexpr int kFormatVersion = 2;
inline constexpr int kFormatVersionUnpacked = 1;

// Tensors of at most this many bytes are packed (FileTuning::packed_tensor_max_bytes):
// HDF5 spends about 0.1 ms on every dataset it creates or opens, which dominates the save
// and load of tens of thousands of small tensors (mixture-of-experts models).
inline constexpr std::uint64_t kPackedTensorMaxBytes = 1ull << 20;
// Each packed tensor starts at a multiple of this many bytes of its packed dataset.
inline constexpr std::uint64_t kPackedAlignment = 64;
// /_ckptio/packed/<group>: the packed tensors of one group, a 1-D uint8 dataset.
inline constexpr const char* kPackedGroup = "/_ckptio/packed";

inline constexpr const char* kAttrFormat = "ckptio_format";
inline constexpr const char* kAttrFormatVersion = "ckptio_format_version";
inline constexpr const char* kAttrLibraryVersion = "library_version";
inline constexpr const char* kAttrCreated = "created";
inline constexpr const char* kAttrHost = "host";
inline constexpr const char* kAttrWorldSize = "world_size";
inline constexpr const char* kAttrEpoch = "epoch";
inline constexpr const char* kAttrStep = "step";
inline constexpr const char* kAttrGlobalStep = "global_step";
inline constexpr const char* kAttrDType = "dtype";
// XXH3-64 of the index JSON (16 hex digits); absent in files from before it existed.
inline constexpr const char* kAttrIndexXxh3 = "index_xxh3";

inline constexpr const char* kMetaGroup = "/_ckptio";
inline constexpr const char* kIndexDataset = "/_ckptio/index";
inline constexpr const char* kRunningStateDataset = "/_ckptio/running_state";
inline constexpr const char* kRankBlobsDataset = "/_ckptio/rank_blobs";
inline constexpr const char* kRankBlobOffsetsDataset = "/_ckptio/rank_blob_offsets";

}  // namespace ckptio::detail::h5
