# cli.cmake — the command line: --help and unknown flags of every vmc command (tests/test_cli.sh).
# A C test of runtime/ code that needs no GPU: executable tests/SOURCE.c linked with runtime, ctest NAME (label cpu).
function(runtime_cpu_test NAME SOURCE)
  add_executable(${SOURCE} ${CMAKE_CURRENT_FUNCTION_LIST_DIR}/${SOURCE}.c)
  target_link_libraries(${SOURCE} PRIVATE runtime)
  add_test(NAME ${NAME} COMMAND ${SOURCE})
  set_tests_properties(${NAME} PROPERTIES LABELS cpu TIMEOUT 60)
endfunction()
add_test(NAME cli_help COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_cli.sh $<TARGET_FILE:vmc>)
set_tests_properties(cli_help PROPERTIES LABELS cpu TIMEOUT 60)
# scripts/scan_profile.py, the instruction-mix summary of scripts/scan_profile.sh (which needs a GPU and ncu)
add_test(NAME scan_profile_summary COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_scan_profile.sh)
set_tests_properties(scan_profile_summary PROPERTIES LABELS cpu TIMEOUT 60)
# runtime/cli.c: integer flags and tuning variables (VMC_STREAMS, VMC_GEMM_CANDIDATES), malformed ones refused
runtime_cpu_test(cli_values test_cli_values)
# scripts/trace/timeline.py: a `vmc bench` trace's graph replays reported as the step, the eager run apart
add_test(NAME trace_timeline COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_timeline.sh)
set_tests_properties(trace_timeline PROPERTIES LABELS cpu TIMEOUT 60)
# runtime/gpu_clocks.c: how `vmc bench` describes the GPU's clocks during its timed steps (NVML optional)
runtime_cpu_test(gpu_clocks test_gpu_clocks)
# scripts/bench_ab.sh: same-run comparison tables, with stand-in vmc commands (no GPU)
add_test(NAME bench_ab COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_bench_ab.sh)
set_tests_properties(bench_ab PROPERTIES LABELS cpu TIMEOUT 60)
