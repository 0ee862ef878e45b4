// Checks that an error was agreed: every rank threw the same type with the same text.
#pragma once

#include <gtest/gtest.h>
#include <mpi.h>

#include <functional>
#include <string>

#include "ckptio/error.hpp"

namespace ckptio::test {

// Runs fn, which must throw an ErrorT on this rank. Returns the message, after checking
// that every rank of comm threw the same type with the same message.
template <class ErrorT>
std::string expect_agreed_error(const std::function<void()>& fn, MPI_Comm comm = MPI_COMM_WORLD) {
  std::string message = "<no exception>";
  int right_type = 0;
  try {
    fn();
  } catch (const ErrorT& e) {
    message = e.what();
    right_type = 1;
  } catch (const std::exception& e) {
    message = std::string("<other exception> ") + e.what();
  }
  EXPECT_EQ(right_type, 1) << message;
  int all_right = 0;
  MPI_Allreduce(&right_type, &all_right, 1, MPI_INT, MPI_MIN, comm);
  EXPECT_EQ(all_right, 1) << "some rank did not throw the expected error type";
  // Same text everywhere: compare with rank 0's.
  int len = static_cast<int>(message.size());
  MPI_Bcast(&len, 1, MPI_INT, 0, comm);
  std::string root_message = message;
  root_message.resize(len);
  MPI_Bcast(root_message.data(), len, MPI_CHAR, 0, comm);
  EXPECT_EQ(message, root_message) << "ranks disagree on the error text";
  return message;
}

}  // namespace ckptio::test
