// Runs one piece of work at a time on a background thread and hands its outcome back.
// Every live BackgroundSave is joined from an MPI_Finalize hook, so that an I/O thread
// never outlives MPI (and HDF5, which shuts down inside MPI_Finalize).
#pragma once

#include <exception>
#include <functional>
#include <mutex>
#include <thread>

namespace ckptio::detail {

class BackgroundSave {
 public:
  BackgroundSave();
  ~BackgroundSave();  // joins; an error nobody waited for is logged, not thrown
  BackgroundSave(const BackgroundSave&) = delete;
  BackgroundSave& operator=(const BackgroundSave&) = delete;

  // Starts `work` on the background thread. The previous work must have been waited for.
  void start(std::function<void()> work);
  // Waits for the work in flight (if any) and rethrows the exception it ended with.
  void wait();
  // True between start() and the wait() that collects its outcome.
  bool pending() const;

  // Joins every live BackgroundSave's thread (errors are kept for their wait()). Called
  // from the MPI_Finalize hook; registers that hook on first use.
  static void join_all() noexcept;
  static void register_finalize_hook();

 private:
  void join() noexcept;

  mutable std::mutex mutex_;  // guards thread_ joins against join_all on another thread
  std::thread thread_;
  std::exception_ptr error_;
  bool pending_ = false;
};

}  // namespace ckptio::detail
