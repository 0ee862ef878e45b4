#include "core/spawn.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>

extern char** environ;

namespace ckptio::detail {

SpawnResult spawn_and_wait(const std::vector<std::string>& argv, double timeout_seconds) {
  SpawnResult result;
  if (argv.empty()) {
    result.error = "no program given";
    return result;
  }
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) {
    result.error = std::string("pipe: ") + std::strerror(errno);
    return result;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addclose(&actions, pipe_fds[0]);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDERR_FILENO);
  posix_spawn_file_actions_addclose(&actions, pipe_fds[1]);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  // The child starts with default signal handling, whatever this process installed.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGUSR1);
  sigaddset(&defaults, SIGUSR2);
  sigaddset(&defaults, SIGTERM);
  sigaddset(&defaults, SIGINT);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);

  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, args[0], &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(pipe_fds[1]);
  if (rc != 0) {
    close(pipe_fds[0]);
    result.error = "cannot run " + argv[0] + ": " + std::strerror(rc);
    return result;
  }
  result.started = true;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_seconds);
  bool timed_out = false;
  char buffer[4096];
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd readable{pipe_fds[0], POLLIN, 0};
    const int ready = poll(&readable, 1, static_cast<int>(std::min<long long>(left.count(), 1000)));
    if (ready < 0 && errno != EINTR) break;
    if (ready <= 0) continue;
    const ssize_t n = read(pipe_fds[0], buffer, sizeof buffer);
    if (n > 0) {
      if (result.output.size() < (1u << 20)) result.output.append(buffer, static_cast<std::size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  close(pipe_fds[0]);
  if (timed_out) {
    kill(pid, SIGKILL);
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%g", timeout_seconds);
    result.error = argv[0] + " timed out after " + seconds + " s";
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      result.exit_status = -1;
      return result;
    }
  }
  if (WIFEXITED(status)) result.exit_status = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.exit_status = 128 + WTERMSIG(status);
  // posix_spawnp reports a missing program as exit status 127 from the child (glibc).
  if (!timed_out && result.exit_status == 127 && result.output.empty()) result.error = argv[0] + ": command not found";
  return result;
}

std::optional<long> parse_slurm_duration(const std::string& raw) {
  std::string text = raw;
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ' || text.back() == '\r')) text.pop_back();
  while (!text.empty() && text.front() == ' ') text.erase(text.begin());
  if (text.empty()) return std::nullopt;
  long days = 0;
  if (const auto dash = text.find('-'); dash != std::string::npos) {
    const std::string d = text.substr(0, dash);
    if (d.empty() || d.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
    days = std::stol(d);
    text = text.substr(dash + 1);
  }
  long parts[3] = {0, 0, 0};
  int count = 0;
  std::size_t begin = 0;
  for (;;) {
    const std::size_t colon = text.find(':', begin);
    const std::string part = text.substr(begin, colon == std::string::npos ? std::string::npos : colon - begin);
    if (part.empty() || part.size() > 9 || part.find_first_not_of("0123456789") != std::string::npos || count == 3)
      return std::nullopt;
    parts[count++] = std::stol(part);
    if (colon == std::string::npos) break;
    begin = colon + 1;
  }
  long seconds = 0;
  for (int i = 0; i < count; ++i) seconds = seconds * 60 + parts[i];
  // "days-hours" and "days-hours:minutes" count from hours.
  if (days > 0 && count < 3) {
    seconds = parts[0] * 3600 + (count > 1 ? parts[1] * 60 : 0);
  }
  return days * 86400 + seconds;
}

}  // namespace ckptio::detail
