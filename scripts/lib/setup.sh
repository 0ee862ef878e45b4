# shellcheck shell=bash source-path=SCRIPTDIR
# Steps shared by scripts/test and scripts/demo: locate the repository, install the Debian
# packages that are missing, configure and build. Source this file; it only defines
# functions and the variables named CKPTIO_*.
#
# Environment a caller may set:
#   CKPTIO_BUILD_DIR   build folder (default: build; a relative path is taken from the repository root)
#   CKPTIO_BUILD_TYPE  CMake build type (default: RelWithDebInfo)
#   CKPTIO_CMAKE_ARGS  extra arguments for the CMake configure step, split on spaces
#   CKPTIO_BUILD_JOBS  parallel compile jobs (default: the number of processors)

CKPTIO_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CKPTIO_REPO_ROOT="$(cd "${CKPTIO_LIB_DIR}/../.." && pwd)"
# shellcheck source=packages.sh
source "${CKPTIO_LIB_DIR}/packages.sh"

CKPTIO_BUILD_DIR="${CKPTIO_BUILD_DIR:-build}"
case "${CKPTIO_BUILD_DIR}" in
  /*) ;;
  *) CKPTIO_BUILD_DIR="${CKPTIO_REPO_ROOT}/${CKPTIO_BUILD_DIR}" ;;
esac
CKPTIO_BUILD_TYPE="${CKPTIO_BUILD_TYPE:-RelWithDebInfo}"

# Filled by ckptio_install_missing_packages for the callers' summaries.
CKPTIO_PACKAGES_INSTALLED=()

ckptio_section() {
  printf '\n==> %s\n' "$*"
}

ckptio_die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# Seconds since the epoch, for the phase timings in the summaries.
ckptio_now() {
  date +%s
}

ckptio_is_installed() {
  dpkg -s "$1" 2>/dev/null | grep -q '^Status: install ok installed$'
}

# Prints the packages of CKPTIO_APT_PACKAGES that are not installed, one a line.
ckptio_missing_packages() {
  local package
  for package in "${CKPTIO_APT_PACKAGES[@]}"; do
    ckptio_is_installed "${package}" || printf '%s\n' "${package}"
  done
}

# Installs what is missing, and nothing at all when everything is there: a machine that has
# the packages needs neither network nor root.
ckptio_install_missing_packages() {
  command -v dpkg >/dev/null 2>&1 || {
    echo "dpkg not found: this script installs Debian packages; install the packages of scripts/lib/packages.sh by hand and run it with --no-install" >&2
    return 1
  }
  local missing=()
  mapfile -t missing < <(ckptio_missing_packages)
  if ((${#missing[@]} == 0)); then
    echo "all ${#CKPTIO_APT_PACKAGES[@]} required packages are installed"
    return 0
  fi
  echo "missing packages: ${missing[*]}"
  local as_root=()
  if [[ "$(id -u)" != 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
      as_root=(sudo)
    else
      echo "not root and no sudo: install them by hand with apt-get, then rerun with --no-install" >&2
      return 1
    fi
  fi
  # No standard input in CI: nothing may prompt.
  "${as_root[@]}" apt-get update </dev/null || return
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}" </dev/null || return
  # shellcheck disable=SC2034  # read by the scripts that source this file
  CKPTIO_PACKAGES_INSTALLED=("${missing[@]}")
  mapfile -t missing < <(ckptio_missing_packages)
  if ((${#missing[@]} != 0)); then
    echo "still missing after apt-get install: ${missing[*]}" >&2
    return 1
  fi
}

# The test build compiles in fault injection (CKPTIO_FAULT_INJECTION): the crash-safety
# tests kill and stall ranks at points inside a save. A user's build leaves it out.
ckptio_configure() {
  local extra_args=()
  # Word splitting is the point here: CKPTIO_CMAKE_ARGS holds several arguments.
  # shellcheck disable=SC2206
  [[ -n "${CKPTIO_CMAKE_ARGS:-}" ]] && extra_args=(${CKPTIO_CMAKE_ARGS})
  cmake -S "${CKPTIO_REPO_ROOT}" -B "${CKPTIO_BUILD_DIR}" \
    -DCMAKE_BUILD_TYPE="${CKPTIO_BUILD_TYPE}" -DCKPTIO_FAULT_INJECTION=ON "${extra_args[@]}"
}

# Builds the given targets, or everything when none is given.
ckptio_build() {
  local jobs="${CKPTIO_BUILD_JOBS:-$(nproc)}"
  local target_args=()
  (($# > 0)) && target_args=(--target "$@")
  cmake --build "${CKPTIO_BUILD_DIR}" --parallel "${jobs}" "${target_args[@]}"
}

# Open MPI refuses to run as root (CI containers run as root) and to start more ranks than
# cores unless told; the tests and the demo start up to 4 ranks on small machines.
# Containers often forbid the cross-memory attach that the shared-memory transport tries
# first, which makes every message print a warning; the copy-in/copy-out path always works.
ckptio_export_mpi_environment() {
  export OMPI_ALLOW_RUN_AS_ROOT=1
  export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  export OMPI_MCA_rmaps_base_oversubscribe="${OMPI_MCA_rmaps_base_oversubscribe:-1}"
  export OMPI_MCA_btl_vader_single_copy_mechanism="${OMPI_MCA_btl_vader_single_copy_mechanism:-none}"
}
