// Names and numbers of the container format (docs/FORMAT.md).
#pragma once

namespace ckptio::detail::h5 {

inline constexpr const char* kFormatName = "ckptio";
// Version 1: the first format. A reader accepts versions 1..kFormatVersion.
inline constexpr int kFormatVersion = 1;

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
