#include "h5/h5_types.hpp"

namespace ckptio::detail::h5 {
namespace {

Handle custom_float16(size_t exponent_bits, size_t mantissa_bits, size_t exponent_bias, const char* what) {
  Handle t = checked(H5Tcopy(H5T_IEEE_F32LE), what);
  // sign at bit 15, exponent above the mantissa, mantissa from bit 0; then shrink to 2 bytes.
  check(H5Tset_fields(t.get(), 15, mantissa_bits, exponent_bits, 0, mantissa_bits), what);
  check(H5Tset_size(t.get(), 2), what);
  check(H5Tset_ebias(t.get(), exponent_bias), what);
  return t;
}

}  // namespace

Handle datatype_for(DType dtype) {
  switch (dtype) {
    case DType::F64:
      return checked(H5Tcopy(H5T_IEEE_F64LE), "copy F64 type");
    case DType::F32:
      return checked(H5Tcopy(H5T_IEEE_F32LE), "copy F32 type");
    case DType::F16:
      return custom_float16(5, 10, 15, "make F16 type");
    case DType::BF16:
      return custom_float16(8, 7, 127, "make BF16 type");
    case DType::F8_E4M3:
    case DType::F8_E5M2:
    case DType::U8:
      return checked(H5Tcopy(H5T_STD_U8LE), "copy U8 type");
    case DType::I64:
      return checked(H5Tcopy(H5T_STD_I64LE), "copy I64 type");
    case DType::I32:
      return checked(H5Tcopy(H5T_STD_I32LE), "copy I32 type");
    case DType::I16:
      return checked(H5Tcopy(H5T_STD_I16LE), "copy I16 type");
    case DType::I8:
      return checked(H5Tcopy(H5T_STD_I8LE), "copy I8 type");
    case DType::U64:
      return checked(H5Tcopy(H5T_STD_U64LE), "copy U64 type");
    case DType::U32:
      return checked(H5Tcopy(H5T_STD_U32LE), "copy U32 type");
    case DType::U16:
      return checked(H5Tcopy(H5T_STD_U16LE), "copy U16 type");
    case DType::BOOL: {
      Handle t = checked(H5Tenum_create(H5T_STD_I8LE), "make BOOL type");
      const signed char no = 0, yes = 1;
      check(H5Tenum_insert(t.get(), "FALSE", &no), "make BOOL type");
      check(H5Tenum_insert(t.get(), "TRUE", &yes), "make BOOL type");
      return t;
    }
  }
  return checked(H5Tcopy(H5T_STD_U8LE), "copy U8 type");
}

}  // namespace ckptio::detail::h5
