#include "ckptio/error.hpp"

namespace ckptio {

void throw_error(ErrorKind kind, const std::string& message) {
  switch (kind) {
    case ErrorKind::Usage:
      throw UsageError(message);
    case ErrorKind::Mismatch:
      throw MismatchError(message);
    case ErrorKind::Format:
      throw FormatError(message);
    case ErrorKind::Io:
      throw IoError(message);
    case ErrorKind::Integrity:
      throw IntegrityError(message);
    case ErrorKind::Locked:
      throw LockedError(message);
    case ErrorKind::Generic:
      break;
  }
  throw Error(message);
}

}  // namespace ckptio
