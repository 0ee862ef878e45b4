// ckptio: the exception hierarchy. Every error the library raises derives from ckptio::Error.
#pragma once

#include <stdexcept>
#include <string>

namespace ckptio {

// Which subclass an error is; lets an error travel between ranks and be rethrown as the
// same type everywhere.
enum class ErrorKind {
  Generic = 0,
  Usage = 1,      // the caller used the API wrongly (bad argument, bad name, wrong call order)
  Mismatch = 2,   // the caller's tensors/state disagree with the file or across ranks
  Format = 3,     // a file is not a valid ckptio container (or other input format)
  Io = 4,         // the operating system or MPI-IO failed (open, write, ENOSPC, rename, ...)
  Integrity = 5,  // a checksum or completeness check failed
  Locked = 6,     // another job holds the checkpoint root
};

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message, ErrorKind kind = ErrorKind::Generic)
      : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const noexcept { return kind_; }

 private:
  ErrorKind kind_;
};

class UsageError : public Error {
 public:
  explicit UsageError(const std::string& m) : Error(m, ErrorKind::Usage) {}
};
class MismatchError : public Error {
 public:
  explicit MismatchError(const std::string& m) : Error(m, ErrorKind::Mismatch) {}
};
class FormatError : public Error {
 public:
  explicit FormatError(const std::string& m) : Error(m, ErrorKind::Format) {}
};
class IoError : public Error {
 public:
  explicit IoError(const std::string& m) : Error(m, ErrorKind::Io) {}
};
class IntegrityError : public Error {
 public:
  explicit IntegrityError(const std::string& m) : Error(m, ErrorKind::Integrity) {}
};
class LockedError : public Error {
 public:
  explicit LockedError(const std::string& m) : Error(m, ErrorKind::Locked) {}
};

// Throws the subclass that matches kind, with message.
[[noreturn]] void throw_error(ErrorKind kind, const std::string& message);

}  // namespace ckptio
