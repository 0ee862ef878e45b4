# Fuzz targets of the PyTorch .pt reader: the weights-only unpickler alone, and whole
# archives (zip reader, then the unpickler and every tensor read).
ckptio_add_fuzzer(torch_pickle ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_torch_pickle.cpp)
ckptio_add_fuzzer(torch_zip ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_torch_zip.cpp)
