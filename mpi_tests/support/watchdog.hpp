// Turns a hang into a failure: aborts the MPI job when the scope it guards does not end in
// time. Tests of damaged or hostile input use it, as a bug there shows up as ranks waiting on
// each other forever rather than as a wrong result.
#pragma once

#include <mpi.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

namespace ckptio::test {

class Watchdog {
 public:
  explicit Watchdog(std::string what, std::chrono::seconds limit = std::chrono::seconds(60))
      : what_(std::move(what)), limit_(limit), thread_([this] { watch(); }) {}
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

 private:
  void watch() {
    std::unique_lock<std::mutex> lock(mutex_);
    if (!cv_.wait_for(lock, limit_, [this] { return done_; })) {
      std::fprintf(stderr, "HANG: %s did not finish within %lld s\n", what_.c_str(),
                   static_cast<long long>(limit_.count()));
      MPI_Abort(MPI_COMM_WORLD, 3);
    }
  }
  // Declared before thread_: the thread reads them as soon as it starts.
  std::string what_;
  std::chrono::seconds limit_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

}  // namespace ckptio::test
