# cpu.cmake — tests of the cpu backend, autodiff, RNG and initialisers: per-op finite-difference gradient
# checks (fp64), composite-graph gradient checks, hand-computed forward cases, RNG and init statistics.
foreach(t ops autodiff layers init)
  if(EXISTS ${CMAKE_CURRENT_LIST_DIR}/test_${t}.c)
    add_executable(test_${t} ${CMAKE_CURRENT_LIST_DIR}/test_${t}.c)
    target_link_libraries(test_${t} PRIVATE runtime compiler)
    add_test(NAME cpu_${t} COMMAND test_${t})
    set_tests_properties(cpu_${t} PROPERTIES LABELS cpu TIMEOUT 120 ENVIRONMENT "OMP_NUM_THREADS=2;OMP_WAIT_POLICY=passive")
  endif()
endforeach()

# Whole tiny models through the DSL (models/tiny.vmc shrunk with --set): every parameter's gradient vs FD.
if(EXISTS ${CMAKE_CURRENT_LIST_DIR}/test_model_grads.c)
  add_executable(test_model_grads ${CMAKE_CURRENT_LIST_DIR}/test_model_grads.c)
  target_link_libraries(test_model_grads PRIVATE runtime dsl compiler)
  add_test(NAME cpu_model_grads COMMAND test_model_grads ${VMC_ROOT})
  set_tests_properties(cpu_model_grads PROPERTIES LABELS cpu TIMEOUT 180 ENVIRONMENT "OMP_NUM_THREADS=2;OMP_WAIT_POLICY=passive")
endif()
