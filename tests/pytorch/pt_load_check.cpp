// load_checkpoint from PyTorch files, run under mpiexec: every rank loads an equal flat range
// of every tensor under a top-level key of a torch.save file (and, when given, of the
// safetensors file `ckptio convert` made from it) and compares it with what TorchFile reads.
// Also checks strict and non-strict key reports. Prints "OK" on rank 0 when all is right.
//
//   mpiexec -n N pt_load_check FILE.pt GROUP [CONVERTED.safetensors]
#include <mpi.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "ckptio/ckptio.hpp"
#include "ckptio/load_checkpoint.hpp"
#include "ckptio/torch_file.hpp"

namespace {

int failures = 0;

void expect(bool ok, const std::string& what) {
  if (ok) return;
  ++failures;
  std::fprintf(stderr, "FAIL: %s\n", what.c_str());
}

std::int64_t share(std::int64_t n, int rank, int ranks) { return n * rank / ranks; }

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, ranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  if (argc < 3) {
    std::fprintf(stderr, "usage: pt_load_check FILE.pt GROUP [CONVERTED.safetensors]\n");
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  const std::string pt = argv[1], group = argv[2];
  const ckptio::TorchFile file(pt);

  // This rank's flat share of every tensor under `group.`, and the expected bytes.
  std::vector<std::vector<std::uint8_t>> got, want;
  ckptio::StateDict dict;
  const std::string prefix = group + ".";
  for (std::size_t i = 0; i < file.tensors().size(); ++i) {
    const auto& t = file.tensors()[i];
    if (t.name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::int64_t begin = share(t.elements(), rank, ranks), end = share(t.elements(), rank + 1, ranks);
    const std::size_t bytes = static_cast<std::size_t>(end - begin) * ckptio::dtype_size(t.dtype);
    want.emplace_back(bytes);
    file.read_elements(i, begin, end, want.back().data());
    got.emplace_back(bytes, 0xA5);
    dict.add(t.name.substr(prefix.size()), ckptio::TensorShard::flat(got.back().data(), t.dtype, t.shape, begin, end));
  }
  expect(!dict.empty(), "no tensors under '" + group + "' in " + pt);

  std::vector<std::string> sources = {pt};
  if (argc > 3) sources.push_back(argv[3]);
  for (const std::string& path : sources) {
    for (auto& g : got) std::memset(g.data(), 0xA5, g.size());
    ckptio::LoadOptions options;
    if (path == pt) options.group = group;  // a safetensors file has no groups
    const auto result = ckptio::load_checkpoint(MPI_COMM_WORLD, dict, path, options);
    expect(result.keys.clean(), path + ": unexpected key report");
    for (std::size_t i = 0; i < got.size(); ++i)
      expect(got[i] == want[i], path + ": tensor #" + std::to_string(i) + " differs");
  }

  // Strict: a tensor the file lacks is listed, the same on every rank; non-strict returns it.
  std::vector<float> extra(4);
  ckptio::StateDict with_extra = dict;
  with_extra.add("not.in.file", ckptio::TensorShard::whole(extra.data(), ckptio::DType::F32, {4}));
  std::string message;
  try {
    ckptio::load_checkpoint(MPI_COMM_WORLD, with_extra, pt, {.group = group});
  } catch (const ckptio::MismatchError& e) {
    message = e.what();
  }
  expect(message.find("not.in.file") != std::string::npos, "strict load did not name the missing key: " + message);
  const auto lenient = ckptio::load_checkpoint(MPI_COMM_WORLD, with_extra, pt, {.strict = false, .group = group});
  expect(lenient.keys.missing == std::vector<ckptio::KeyReport::Key>{{group, "not.in.file"}},
         "non-strict load did not return the missing key under its group");

  int all = 0;
  MPI_Allreduce(&failures, &all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0 && all == 0) std::puts("OK");
  MPI_Finalize();
  return all == 0 ? 0 : 1;
}
