#include "io/background_save.hpp"

#include <mpi.h>
#include <pthread.h>

#include <set>
#include <utility>

#include "core/log.hpp"

namespace ckptio::detail {

namespace {

std::mutex& registry_mutex() {
  static std::mutex mutex;
  return mutex;
}

std::set<BackgroundSave*>& registry() {
  static std::set<BackgroundSave*> live;
  return live;
}

// MPI deletes MPI_COMM_SELF's attributes first thing in MPI_Finalize, while MPI is still
// fully usable, in the reverse order of setting them: the I/O threads finish their
// collectives and are joined here, before HDF5's own hook (set earlier) closes HDF5.
int on_finalize(MPI_Comm, int, void*, void*) {
  BackgroundSave::join_all();
  return MPI_SUCCESS;
}

}  // namespace

BackgroundSave::BackgroundSave() {
  std::lock_guard lock(registry_mutex());
  registry().insert(this);
}

BackgroundSave::~BackgroundSave() {
  {
    std::lock_guard lock(registry_mutex());
    registry().erase(this);
  }
  join();
  if (error_) {
    try {
      std::rethrow_exception(error_);
    } catch (const std::exception& e) {
      log_warn("an asynchronous save failed and nobody waited for it: ", e.what());
    } catch (...) {
      log_warn("an asynchronous save failed and nobody waited for it");
    }
  }
}

void BackgroundSave::start(std::function<void()> work) {
  std::lock_guard lock(mutex_);
  error_ = nullptr;
  pending_ = true;
  thread_ = std::thread([this, work = std::move(work)] {
    // Named, so that top -H, perf and debuggers tell it from the training threads.
    pthread_setname_np(pthread_self(), "ckptio-io");
    try {
      work();
    } catch (...) {
      error_ = std::current_exception();
    }
  });
}

void BackgroundSave::join() noexcept {
  std::lock_guard lock(mutex_);
  if (thread_.joinable()) thread_.join();
}

void BackgroundSave::wait() {
  join();
  std::lock_guard lock(mutex_);
  if (!pending_) return;
  pending_ = false;
  if (auto error = std::exchange(error_, nullptr)) std::rethrow_exception(error);
}

bool BackgroundSave::pending() const {
  std::lock_guard lock(mutex_);
  return pending_;
}

void BackgroundSave::join_all() noexcept {
  std::lock_guard lock(registry_mutex());
  for (BackgroundSave* save : registry()) save->join();
}

void BackgroundSave::register_finalize_hook() {
  static std::once_flag once;
  std::call_once(once, [] {
    int keyval = MPI_KEYVAL_INVALID;
    MPI_Comm_create_keyval(MPI_COMM_NULL_COPY_FN, on_finalize, &keyval, nullptr);
    MPI_Comm_set_attr(MPI_COMM_SELF, keyval, nullptr);
  });
}

}  // namespace ckptio::detail
