// Damaged containers: truncated at several lengths, a flipped byte in a tensor's data,
// flipped bytes in the HDF5 metadata, a future format version, a file that is not HDF5.
// Every load must end in the same ckptio::Error on every rank (or, for a metadata flip
// that happens to be harmless, load the right data): no crash, and no hang — a watchdog
// aborts the job when one case takes longer than a minute.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <atomic>
#include <cstdio>
#include <fstream>

#include "support/scoped_env.hpp"
#include "support/test_state.hpp"
#include "support/watchdog.hpp"

namespace ckptio::test {
namespace {

namespace fs = std::filesystem;

const std::vector<TensorSpec> kSpecs = {{"model", "w", DType::F32, {96, 32}, Layout::Dim0Blocks},
                                        {"model", "b", DType::BF16, {32}, Layout::Replicated},
                                        {"optimizer", "m", DType::F32, {96 * 32}, Layout::Flat}};

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}
void write_all(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// [begin, end) byte ranges of the raw data of every dataset (rank 0; serial HDF5).
std::vector<std::pair<std::uint64_t, std::uint64_t>> data_ranges(const fs::path& file) {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  for (const char* name : {"/model/w", "/model/b", "/optimizer/m", "/_ckptio/index", "/_ckptio/running_state",
                           "/_ckptio/rank_blobs", "/_ckptio/rank_blob_offsets"}) {
    if (H5Lexists(f, name, H5P_DEFAULT) <= 0) continue;
    const hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    const haddr_t off = H5Dget_offset(d);
    if (off != HADDR_UNDEF) out.push_back({off, off + H5Dget_storage_size(d)});
    H5Dclose(d);
  }
  H5Fclose(f);
  return out;
}

// Outcome of loading one damaged file, agreed check included: "" for a load that returned
// the right data, else the error type and text.
std::string load_outcome(CheckpointIO& io, const fs::path& file) {
  Watchdog watchdog("load of " + file.filename().string());
  TestState state(kSpecs, world_rank(), world_size());
  state.poison();
  std::string outcome;
  try {
    io.load(file, state.snapshot());
    outcome = state.check();
    if (!outcome.empty()) outcome = "WRONG DATA without an error: " + outcome;
  } catch (const Error& e) {
    outcome = std::string("error kind ") + std::to_string(static_cast<int>(e.kind())) + ": " + e.what();
  } catch (const std::exception& e) {
    outcome = std::string("NON-CKPTIO EXCEPTION: ") + e.what();
  }
  // The same outcome on every rank.
  int len = static_cast<int>(outcome.size());
  MPI_Bcast(&len, 1, MPI_INT, 0, MPI_COMM_WORLD);
  std::string root = outcome;
  root.resize(static_cast<std::size_t>(len));
  MPI_Bcast(root.data(), len, MPI_CHAR, 0, MPI_COMM_WORLD);
  int same = root == outcome ? 1 : 0, all_same = 0;
  MPI_Allreduce(&same, &all_same, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  EXPECT_EQ(all_same, 1) << file << ": ranks disagree; rank " << world_rank() << ": " << outcome;
  EXPECT_EQ(outcome.find("WRONG DATA"), std::string::npos) << file << ": " << outcome;
  EXPECT_EQ(outcome.find("NON-CKPTIO"), std::string::npos) << file << ": " << outcome;
  return outcome;
}

TEST(CorruptInput, EveryDamagedFileGivesAnAgreedErrorNeverACrashOrHang) {
  const ScopedEnv unpacked(kUnpackedEnv, "0");  // opens or damages the datasets of single tensors
  SharedTempDir dir;
  TestState state(kSpecs, world_rank(), world_size());
  state.fill();
  CheckpointIO io(MPI_COMM_WORLD, dir / "root");
  const fs::path good = io.save(state.snapshot());
  const std::string bytes = world_rank() == 0 ? read_all(good) : std::string();

  struct Case {
    std::string name;
    std::string must_contain;  // "" : any ckptio error (or a correct load, for metadata flips)
  };
  std::vector<Case> cases;
  if (world_rank() == 0) {
    const auto ranges = data_ranges(good);  // model/w, model/b, optimizer/m, then the index, ...
    auto in_data = [&](std::uint64_t at) {
      for (auto [b, e] : ranges)
        if (at >= b && at < e) return true;
      return false;
    };
    for (std::size_t cut : {std::size_t{0}, std::size_t{7}, std::size_t{100}, std::size_t{2048}, bytes.size() / 2,
                            bytes.size() - 4096, bytes.size() - 1}) {
      write_all(dir / ("cut" + std::to_string(cut) + ".h5"), bytes.substr(0, cut));
      cases.push_back({"cut" + std::to_string(cut) + ".h5", ""});
    }
    std::string flipped = bytes;
    flipped[ranges[0].first + 50] ^= 0x01;  // inside /model/w
    write_all(dir / "data_flip.h5", flipped);
    cases.push_back({"data_flip.h5", "does not match its checksum"});
    std::string index_flip = bytes;
    index_flip[ranges[3].first + 30] ^= 0x01;  // inside /_ckptio/index
    write_all(dir / "index_flip.h5", index_flip);
    cases.push_back({"index_flip.h5", "the index does not match its checksum (root attribute index_xxh3)"});
    int metadata_flips = 0;
    for (std::uint64_t at = 0; at < bytes.size() && metadata_flips < 24; at += 97) {
      if (in_data(at)) continue;
      std::string m = bytes;
      m[at] ^= 0x5a;
      const std::string name = "meta_flip" + std::to_string(at) + ".h5";
      write_all(dir / name, m);
      cases.push_back({name, ""});
      ++metadata_flips;
    }
    write_all(dir / "text.h5", std::string(5000, 'x'));
    cases.push_back({"text.h5", "is not an HDF5 file"});
    fs::copy_file(good, dir / "future.h5");
    {
      const hid_t f = H5Fopen((dir / "future.h5").c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
      const hid_t a = H5Aopen(f, "ckptio_format_version", H5P_DEFAULT);
      const std::int64_t v = 99;
      H5Awrite(a, H5T_NATIVE_INT64, &v);
      H5Aclose(a);
      H5Fclose(f);
    }
    cases.push_back({"future.h5",
                     "has container format version 99; this ckptio reads versions 1 to 2 (written by a "
                     "newer ckptio: upgrade to read it)"});
  }
  // Send the case list to every rank.
  std::string list;
  for (const auto& c : cases) list += c.name + '\t' + c.must_contain + '\n';
  int len = static_cast<int>(list.size());
  MPI_Bcast(&len, 1, MPI_INT, 0, MPI_COMM_WORLD);
  list.resize(static_cast<std::size_t>(len));
  MPI_Bcast(list.data(), len, MPI_CHAR, 0, MPI_COMM_WORLD);
  cases.clear();
  for (std::size_t pos = 0; pos < list.size();) {
    const auto tab = list.find('\t', pos), nl = list.find('\n', pos);
    cases.push_back({list.substr(pos, tab - pos), list.substr(tab + 1, nl - tab - 1)});
    pos = nl + 1;
  }
  ASSERT_GE(cases.size(), 30u);
  int errors = 0;
  for (const auto& c : cases) {
    const std::string outcome = load_outcome(io, dir / c.name);
    if (!outcome.empty()) ++errors;
    if (!c.must_contain.empty())
      EXPECT_NE(outcome.find(c.must_contain), std::string::npos) << c.name << ": " << outcome;
    if (c.name.rfind("cut", 0) == 0) EXPECT_FALSE(outcome.empty()) << c.name << " loaded although truncated";
  }
  if (world_rank() == 0) std::printf("[ corrupt ] %zu damaged files, %d refused with an error\n", cases.size(), errors);
  // The good file still loads.
  EXPECT_EQ(load_outcome(io, good), "");
}

}  // namespace
}  // namespace ckptio::test
