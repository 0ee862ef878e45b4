#include "h5/h5_handle.hpp"

#include <mutex>

#include "ckptio/error.hpp"
#include "core/log.hpp"

namespace ckptio::detail::h5 {
namespace {

herr_t collect_frame(unsigned n, const H5E_error2_t* err, void* out) {
  auto* text = static_cast<std::string*>(out);
  if (n > 0) *text += "; ";
  char major[128] = "", minor[128] = "";
  H5Eget_msg(err->maj_num, nullptr, major, sizeof major);
  H5Eget_msg(err->min_num, nullptr, minor, sizeof minor);
  *text += std::string(err->func_name ? err->func_name : "?") + ": " + (err->desc ? err->desc : "") + " (" + major +
           ": " + minor + ")";
  return 0;
}

}  // namespace

void silence_hdf5_errors() {
  static std::once_flag once;
  std::call_once(once, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });
}

std::string take_error_stack() {
  std::string text;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, collect_frame, &text);
  H5Eclear2(H5E_DEFAULT);
  return text.empty() ? std::string("no HDF5 error details") : text;
}

Handle checked(hid_t id, const std::string& what) {
  if (id < 0) throw IoError(what + ": " + take_error_stack());
  return Handle(id);
}

void check(herr_t status, const std::string& what) {
  if (status < 0) throw IoError(what + ": " + take_error_stack());
}

void Handle::reset() noexcept {
  if (id_ < 0) return;
  std::string error;
  if (!close(&error)) log_warn("closing an HDF5 object failed: ", error);
}

bool Handle::close(std::string* error) {
  if (id_ < 0) return true;
  herr_t status = 0;
  const hid_t id = std::exchange(id_, H5I_INVALID_HID);
  switch (H5Iget_type(id)) {
    case H5I_FILE:
      status = H5Fclose(id);
      break;
    case H5I_GROUP:
      status = H5Gclose(id);
      break;
    case H5I_DATASET:
      status = H5Dclose(id);
      break;
    case H5I_DATASPACE:
      status = H5Sclose(id);
      break;
    case H5I_DATATYPE:
      status = H5Tclose(id);
      break;
    case H5I_ATTR:
      status = H5Aclose(id);
      break;
    case H5I_GENPROP_LST:
      status = H5Pclose(id);
      break;
    default:
      status = H5Idec_ref(id) < 0 ? -1 : 0;
      break;
  }
  if (status < 0) {
    const std::string stack = take_error_stack();
    if (error) *error = stack;
    return false;
  }
  return true;
}

}  // namespace ckptio::detail::h5
