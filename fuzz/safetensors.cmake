# Fuzz targets of the safetensors reader: the header parser and validator, and the Hugging
# Face index-file parser.
ckptio_add_fuzzer(safetensors_header ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_safetensors_header.cpp)
ckptio_add_fuzzer(hf_index ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_hf_index.cpp)
