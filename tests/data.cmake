# data.cmake — tests of the datasets, decoders, augmentations, mixing and the threaded loader (runtime/data_*.c).
# Fixtures (PNG, JPEG, IDX, CIFAR files) are written by the test into a temporary directory.
add_executable(test_data ${CMAKE_CURRENT_LIST_DIR}/test_data.c)
target_link_libraries(test_data PRIVATE runtime compiler)
add_test(NAME data_all COMMAND test_data)
set_tests_properties(data_all PROPERTIES LABELS cpu TIMEOUT 120)
# Bit-exactness against Pillow (resize, RandAugment ops); skipped (77) where Pillow is not installed.
add_executable(data_pil_harness ${CMAKE_CURRENT_LIST_DIR}/data_pil_harness.c)
target_link_libraries(data_pil_harness PRIVATE runtime compiler)
# Debian's python3 first: scripts/deps.sh installs python3-pil for it (a pyenv python on the PATH may lack Pillow).
find_program(VMC_PIL_PYTHON python3 PATHS /usr/bin NO_DEFAULT_PATH)
if(NOT VMC_PIL_PYTHON)
  find_package(Python3 COMPONENTS Interpreter)
  set(VMC_PIL_PYTHON ${Python3_EXECUTABLE})
endif()
if(VMC_PIL_PYTHON)
  add_test(NAME data_pil COMMAND ${VMC_PIL_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/data_pil_check.py $<TARGET_FILE:data_pil_harness>)
  set_tests_properties(data_pil PROPERTIES LABELS cpu TIMEOUT 120 SKIP_RETURN_CODE 77)
endif()
# `vmc bench --data` end to end (synthetic JPEG folder, loader, figures), and its error path.
add_test(NAME data_bench COMMAND ${CMAKE_BINARY_DIR}/vmc bench --data synthetic:40 --threads 2 --batches 2 --batch 8)
set_tests_properties(data_bench PROPERTIES LABELS cpu TIMEOUT 120 PASS_REGULAR_EXPRESSION "data: 16 images in .* images/s")
add_test(NAME data_bench_missing COMMAND ${CMAKE_BINARY_DIR}/vmc bench --data ${CMAKE_BINARY_DIR}/no-such-dataset)
set_tests_properties(data_bench_missing PROPERTIES LABELS cpu TIMEOUT 60 PASS_REGULAR_EXPRESSION "no-such-dataset: No such file or directory")
