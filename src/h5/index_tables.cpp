#include "h5/index_tables.hpp"

#include <cstdint>
#include <cstring>

#include "ckptio/error.hpp"
#include "core/checksum.hpp"

namespace ckptio::detail::h5 {

namespace {

// Per piece: tensor, piece, whole-piece xxh3, chunk count, then the chunk checksums.
constexpr std::size_t kHeadBytes = 4 * sizeof(std::uint64_t);

}  // namespace

void append_piece_checksums(std::string& table, std::size_t tensor, std::size_t piece, const PieceChecksums& sums) {
  const std::uint64_t head[4] = {tensor, piece, sums.whole, sums.chunks.size()};
  table.append(reinterpret_cast<const char*>(head), sizeof head);
  if (!sums.chunks.empty())
    table.append(reinterpret_cast<const char*>(sums.chunks.data()), sums.chunks.size() * sizeof(std::uint64_t));
}

namespace {

// Calls visit(head, chunk checksums) for each entry of one rank's table, head being
// {tensor, piece, whole-piece xxh3, chunk count} and the chunk checksums head[3] unaligned
// u64s. FormatError when the table is cut short.
template <class Visit>
void for_each_piece_checksums(const std::string& bytes, Visit&& visit) {
  for (std::size_t off = 0; off < bytes.size();) {
    std::uint64_t head[4];
    if (bytes.size() - off < kHeadBytes) throw FormatError("piece checksum table: cut short");
    std::memcpy(head, bytes.data() + off, sizeof head);
    off += kHeadBytes;
    if (head[3] > (bytes.size() - off) / sizeof(std::uint64_t)) throw FormatError("piece checksum table: cut short");
    visit(head, bytes.data() + off);
    off += head[3] * sizeof(std::uint64_t);
  }
}

}  // namespace

void fill_piece_checksums(std::string& text, const ChecksumPlaces& places, const std::vector<std::string>& tables) {
  const std::size_t tensors = places.first_piece.empty() ? 0 : places.first_piece.size() - 1;
  for (const auto& bytes : tables)
    for_each_piece_checksums(bytes, [&](const std::uint64_t head[4], const char* chunks) {
      if (head[0] >= tensors || head[1] >= places.first_piece[head[0] + 1] - places.first_piece[head[0]])
        throw FormatError("piece checksum table: entry out of range");
      const ChecksumPlaces::Piece& at = places.pieces[places.first_piece[head[0]] + head[1]];
      if (head[3] != at.chunks)
        throw FormatError("piece checksum table: " + std::to_string(head[3]) + " chunk checksums where the index has " +
                          std::to_string(at.chunks));
      write_hex64(head[2], text.data() + at.xxh3);
      for (std::uint64_t c = 0; c < head[3]; ++c) {
        std::uint64_t sum;
        std::memcpy(&sum, chunks + c * sizeof sum, sizeof sum);
        write_hex64(sum, text.data() + at.first_chunk + c * 19);  // "…", is 19 characters
      }
    });
}

std::string encode_blob_record(const BlobRecord& record) {
  const std::uint64_t fields[2] = {record.bytes, record.xxh3};
  return std::string(reinterpret_cast<const char*>(fields), sizeof fields);
}

BlobRecord decode_blob_record(const std::string& bytes) {
  std::uint64_t fields[2];
  if (bytes.size() != sizeof fields) throw FormatError("blob record: expected 16 bytes");
  std::memcpy(fields, bytes.data(), sizeof fields);
  return {fields[0], fields[1]};
}

}  // namespace ckptio::detail::h5
