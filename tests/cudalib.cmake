# cudalib: NVRTC compile of every template (cpu, no GPU needed) and the GPU checks of scan/conv1d/GEMM (gpu).
add_executable(test_nvrtc ${CMAKE_CURRENT_SOURCE_DIR}/test_nvrtc.c)
target_link_libraries(test_nvrtc PRIVATE codegen)
add_test(NAME nvrtc_templates COMMAND test_nvrtc)
set_tests_properties(nvrtc_templates PROPERTIES LABELS cpu TIMEOUT 300)
