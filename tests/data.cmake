# data.cmake — tests of the datasets, decoders, augmentations, mixing and the threaded loader (runtime/data_*.c).
# Fixtures (PNG, JPEG, IDX, CIFAR files) are written by the test into a temporary directory.
add_executable(test_data ${CMAKE_CURRENT_LIST_DIR}/test_data.c)
target_link_libraries(test_data PRIVATE runtime compiler)
add_test(NAME data_all COMMAND test_data)
set_tests_properties(data_all PROPERTIES LABELS cpu TIMEOUT 120)
