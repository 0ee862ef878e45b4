// RAII for HDF5 identifiers and checked calls. The only place (with the rest of src/h5)
// that includes hdf5.h. HDF5's automatic error printing is switched off; failures become
// exceptions whose text includes the HDF5 error stack.
#pragma once

#include <hdf5.h>

#include <string>
#include <utility>

namespace ckptio::detail::h5 {

// Owns one hid_t and closes it with the matching H5?close on destruction (never throws).
class Handle {
 public:
  Handle() = default;
  explicit Handle(hid_t id) : id_(id) {}
  ~Handle() { reset(); }
  Handle(Handle&& o) noexcept : id_(std::exchange(o.id_, H5I_INVALID_HID)) {}
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = std::exchange(o.id_, H5I_INVALID_HID);
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;

  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  // Closes now and reports failure (close of a file flushes and can fail).
  // Returns false and fills `error` when the close failed.
  bool close(std::string* error = nullptr);
  void reset() noexcept;

 private:
  hid_t id_ = H5I_INVALID_HID;
};

// Switches off HDF5's error printing (once per process).
void silence_hdf5_errors();

// The current HDF5 error stack as one line ("major: minor; ..."), then clears it.
std::string take_error_stack();

// Throws IoError "<what>: <HDF5 error stack>" when id < 0; otherwise wraps it.
Handle checked(hid_t id, const std::string& what);
// Throws IoError "<what>: <HDF5 error stack>" when status < 0.
void check(herr_t status, const std::string& what);

}  // namespace ckptio::detail::h5
