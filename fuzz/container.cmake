# Fuzz target of the container's JSON index decoder (what load trusts after opening a file).
ckptio_add_fuzzer(index_json ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_index_json.cpp)
