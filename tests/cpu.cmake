# cpu.cmake — tests of the cpu backend, autodiff, RNG and initialisers: per-op finite-difference gradient
# checks (fp64), composite-graph gradient checks, hand-computed forward cases, RNG and init statistics.
foreach(t ops autodiff layers init)
  if(EXISTS ${CMAKE_CURRENT_LIST_DIR}/test_${t}.c)
    add_executable(test_${t} ${CMAKE_CURRENT_LIST_DIR}/test_${t}.c)
    target_link_libraries(test_${t} PRIVATE runtime compiler)
    add_test(NAME cpu_${t} COMMAND test_${t})
    set_tests_properties(cpu_${t} PROPERTIES LABELS cpu TIMEOUT 120 ENVIRONMENT "OMP_NUM_THREADS=2;OPENBLAS_NUM_THREADS=1")
  endif()
endforeach()
