// Text from a file, made safe to put into an error message: a name with a NUL byte or a
// newline must neither cut the message short nor forge another line.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ckptio::detail {

// `text` in single quotes, with control characters, DEL and bytes that are not valid UTF-8
// written as \n, \t, \r, \\ or \xHH (so that the message is one line of valid UTF-8), and
// cut after `max_bytes` bytes (ending in "...").
std::string quoted_text(std::string_view text, std::size_t max_bytes = 200);

// `text` as it is when it is short, printable, valid UTF-8 (a tensor name as ckptio users
// write them); quoted_text(text) otherwise.
std::string printable_text(std::string_view text, std::size_t max_bytes = 200);

}  // namespace ckptio::detail
