# cudagen.cmake — tests of the cuda backend's compiler half (fusion, plan, NVRTC) and its executor.
add_executable(test_fuse ${CMAKE_CURRENT_LIST_DIR}/test_fuse.c)
target_link_libraries(test_fuse PRIVATE codegen)
add_test(NAME fuse COMMAND test_fuse)
set_tests_properties(fuse PROPERTIES LABELS cpu)

add_executable(test_cuda_exec ${CMAKE_CURRENT_LIST_DIR}/test_cuda_exec.c ${CMAKE_CURRENT_LIST_DIR}/backend_pair.c)
target_link_libraries(test_cuda_exec PRIVATE runtime)
target_compile_definitions(test_cuda_exec PRIVATE VMC_ROOT="${VMC_ROOT}")
add_test(NAME cuda_exec COMMAND test_cuda_exec)
set_tests_properties(cuda_exec PROPERTIES LABELS gpu SKIP_RETURN_CODE 77 TIMEOUT 900)
# The same checks (but the training runs) with vmc's own kernel for every skinny GEMM, not only the faster ones.
add_test(NAME cuda_exec_own_gemm COMMAND test_cuda_exec --quick)
set_tests_properties(cuda_exec_own_gemm PROPERTIES LABELS gpu SKIP_RETURN_CODE 77 TIMEOUT 900 ENVIRONMENT VMC_OWN_GEMM=2)
# The directions' conv1d backwards each a launch of its own (VMC_CONV_MULTI_BWD=0; by default one launch sums their
# dx): the tiny 4-direction model's gradients against the cpu backend.
add_test(NAME cuda_exec_conv_multi_bwd COMMAND test_cuda_exec --quick)
set_tests_properties(cuda_exec_conv_multi_bwd PROPERTIES LABELS gpu SKIP_RETURN_CODE 77 TIMEOUT 900
                     ENVIRONMENT VMC_CONV_MULTI_BWD=0)
# The same with every memset its own launch (VMC_ZERO_MERGE=0; by default runs of them are one zeroing kernel).
add_test(NAME cuda_exec_zero_merge COMMAND test_cuda_exec --quick)
set_tests_properties(cuda_exec_zero_merge PROPERTIES LABELS gpu SKIP_RETURN_CODE 77 TIMEOUT 900
                     ENVIRONMENT VMC_ZERO_MERGE=0)
# The gradient-norm sums kept after the step's last GEMM, batched there (VMC_HOIST_TAIL=0; by default each runs right
# after its gradient): losses and gradient norms of training steps against the cpu backend.
add_test(NAME cuda_exec_keep_tail COMMAND test_cuda_exec --quick)
set_tests_properties(cuda_exec_keep_tail PROPERTIES LABELS gpu SKIP_RETURN_CODE 77 TIMEOUT 900
                     ENVIRONMENT VMC_HOIST_TAIL=0)
# A wrong own kernel is rejected by the agreement check before it runs (a deliberately broken template).
add_test(NAME own_gemm_check COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_own_gemm_check.sh ${CMAKE_BINARY_DIR} ${VMC_ROOT})
set_tests_properties(own_gemm_check PROPERTIES LABELS gpu SKIP_RETURN_CODE 77 TIMEOUT 900)

# Every model of models/*.vmc through `vmc compile` for sm_90 (NVRTC needs no GPU).
add_test(NAME compile_models COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_compile_models.sh ${CMAKE_BINARY_DIR}/vmc ${VMC_ROOT})
set_tests_properties(compile_models PROPERTIES LABELS cpu TIMEOUT 900)

# The multi-stream schedule of whole steps: conflicting launches ordered, declared memory complete (no GPU).
add_executable(test_streams ${CMAKE_CURRENT_LIST_DIR}/test_streams.c)
target_link_libraries(test_streams PRIVATE runtime)
target_compile_definitions(test_streams PRIVATE VMC_ROOT="${VMC_ROOT}")
add_test(NAME streams COMMAND test_streams)
set_tests_properties(streams PROPERTIES LABELS cpu TIMEOUT 600)
# `vmc bench`'s list of the kernels furthest above their floor, from a stand-in profile (no GPU).
add_executable(test_bench_gaps ${CMAKE_CURRENT_LIST_DIR}/test_bench_gaps.c)
target_link_libraries(test_bench_gaps PRIVATE runtime)
target_compile_definitions(test_bench_gaps PRIVATE VMC_ROOT="${VMC_ROOT}")
add_test(NAME bench_gaps COMMAND test_bench_gaps)
set_tests_properties(bench_gaps PROPERTIES LABELS cpu TIMEOUT 120)
# `vmc bench` prints the step's figures and its floor on this GPU (measured GEMM peak and copy bandwidth).
add_test(NAME bench_gpu COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_bench_gpu.sh ${CMAKE_BINARY_DIR}/vmc ${VMC_ROOT})
set_tests_properties(bench_gpu PROPERTIES LABELS gpu SKIP_RETURN_CODE 77 TIMEOUT 300)
