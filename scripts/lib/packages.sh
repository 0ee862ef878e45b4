# shellcheck shell=bash disable=SC2034  # the list is read by setup.sh, which sources this file
# The Debian packages that building, testing and demonstrating ckptio need: the one list
# that scripts/lib/setup.sh installs from. Append here when the project starts to need
# another package (slurm-wlm for the Slurm tests, libclang-rt-14-dev for sanitizers, ...).
CKPTIO_APT_PACKAGES=(
  # compilers and build tools
  build-essential
  cmake
  pkg-config
  git
  # MPI and parallel HDF5 (the library's own dependencies)
  openmpi-bin
  libopenmpi-dev
  libhdf5-openmpi-dev
  hdf5-tools
  # a serial HDF5 beside it, for the test that configuring against one fails clearly
  libhdf5-dev
  # header-only and small libraries the library and its tool use
  nlohmann-json3-dev
  libcli11-dev
  libxxhash-dev
  # tests and benchmarks
  googletest
  libgtest-dev
  libbenchmark-dev
  # the storage's own limits that bench/run measures ckptio against
  fio
  # interoperability tests read containers back with h5py (Debian's /usr/bin/python3)
  python3
  python3-h5py
  python3-numpy
  # the benchmark's alternatives: h5py over MPI-IO, and torch.save
  python3-h5py-mpi
  python3-mpi4py
  python3-torch
  # the Python package (python/): pybind11 bindings, tested with pytest, installed with pip
  # into a venv (python3-venv)
  python3-dev
  pybind11-dev
  python3-pytest
  python3-venv
  python3-pip
  # libFuzzer targets of the safetensors and index parsers (clang -fsanitize=fuzzer)
  clang
  libclang-rt-14-dev
  # the local one-host Slurm of the preemption tests and the demo (slurm/local-cluster);
  # libpmix-dev lets `srun --mpi=pmix` start Open MPI ranks (slurm/train_srun.sbatch)
  slurm-wlm
  munge
  libpmix-dev
  # the virtual multi-node cluster (slurm/virtual-cluster): ip (network namespaces, veth,
  # bridge), nsenter, unshare and setsid
  iproute2
  util-linux
  # ps/pgrep/pkill, used by tests that watch or signal processes
  procps
)
