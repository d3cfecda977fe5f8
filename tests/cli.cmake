# cli.cmake — the command line: --help and unknown flags of every vmc command (tests/test_cli.sh).
add_test(NAME cli_help COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_cli.sh $<TARGET_FILE:vmc>)
set_tests_properties(cli_help PROPERTIES LABELS cpu TIMEOUT 60)
# scripts/scan_profile.py, the instruction-mix summary of scripts/scan_profile.sh (which needs a GPU and ncu)
add_test(NAME scan_profile_summary COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_scan_profile.sh)
set_tests_properties(scan_profile_summary PROPERTIES LABELS cpu TIMEOUT 60)
# runtime/cli.c: integer flags and tuning variables (VMC_STREAMS, VMC_GEMM_CANDIDATES), malformed ones refused
add_executable(test_cli_values ${CMAKE_CURRENT_LIST_DIR}/test_cli_values.c)
target_link_libraries(test_cli_values PRIVATE runtime)
add_test(NAME cli_values COMMAND test_cli_values)
set_tests_properties(cli_values PROPERTIES LABELS cpu TIMEOUT 60)
# scripts/trace/timeline.py: a `vmc bench` trace's graph replays reported as the step, the eager run apart
add_test(NAME trace_timeline COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_timeline.sh)
set_tests_properties(trace_timeline PROPERTIES LABELS cpu TIMEOUT 60)
# runtime/gpu_clocks.c: how `vmc bench` describes the GPU's clocks during its timed steps (NVML optional)
add_executable(test_gpu_clocks ${CMAKE_CURRENT_LIST_DIR}/test_gpu_clocks.c)
target_link_libraries(test_gpu_clocks PRIVATE runtime)
add_test(NAME gpu_clocks COMMAND test_gpu_clocks)
set_tests_properties(gpu_clocks PROPERTIES LABELS cpu TIMEOUT 60)
