# grad.cmake — `vmc grad` (runtime/cmd_grad.c): finite differences on the tiny model, refusals of bad files (cpu);
# loss and gradient parity of ARM-B and Vim-B with PyTorch through scripts/parity.sh (gpu: skips, 77, without
# torch, or without a GPU for the cuda backend).
add_executable(test_grad ${CMAKE_CURRENT_SOURCE_DIR}/test_grad.c)
target_link_libraries(test_grad PRIVATE runtime dsl compiler)
add_test(NAME grad_cli COMMAND test_grad WORKING_DIRECTORY ${VMC_ROOT})
set_tests_properties(grad_cli PROPERTIES LABELS cpu TIMEOUT 300 ENVIRONMENT "OMP_WAIT_POLICY=passive")
foreach(backend cpu cuda)
  add_test(NAME grad_parity_${backend}
           COMMAND ${VMC_ROOT}/scripts/parity.sh --backend ${backend} --vmc $<TARGET_FILE:vmc>)
  set_tests_properties(grad_parity_${backend} PROPERTIES LABELS gpu SKIP_RETURN_CODE 77 TIMEOUT 900)
endforeach()
