# cudalib: NVRTC compile of every template (cpu, no GPU needed) and the GPU checks of scan/conv1d/GEMM (gpu).
add_executable(test_nvrtc ${CMAKE_CURRENT_SOURCE_DIR}/test_nvrtc.c)
target_link_libraries(test_nvrtc PRIVATE codegen)
add_test(NAME nvrtc_templates COMMAND test_nvrtc)
set_tests_properties(nvrtc_templates PROPERTIES LABELS cpu TIMEOUT 300)

# The scan/conv1d templates compiled as C++ for the CPU (tests/emu/cuda_emu.h stands in for CUDA) and checked
# against the double references: the kernels' algorithms are tested in CI, where there is no GPU.
enable_language(CXX)
set(CMAKE_CXX_STANDARD 17)
file(GLOB EMU_SRC CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/emu/*.cpp)
add_executable(test_emu ${EMU_SRC})
target_compile_options(test_emu PRIVATE -Wno-unused-function -Wno-unknown-pragmas)
target_link_libraries(test_emu PRIVATE Threads::Threads)
add_test(NAME emu_templates COMMAND test_emu)
set_tests_properties(emu_templates PROPERTIES LABELS cpu TIMEOUT 120)

# GPU checks (skip with 77 without a GPU). Built from the few runtime files it needs rather than the whole runtime
# library, so it only depends on the CUDA foundation layer. `test_scan_gpu --bench` prints the scan/conv timings.
add_executable(test_scan_gpu ${CMAKE_CURRENT_SOURCE_DIR}/test_scan_gpu.c ${VMC_ROOT}/runtime/cuda_api.c ${VMC_ROOT}/runtime/cuda_tma.c
               ${VMC_ROOT}/runtime/gemm.c)
target_include_directories(test_scan_gpu PRIVATE ${VMC_ROOT}/runtime)
target_link_libraries(test_scan_gpu PRIVATE codegen m)
add_test(NAME scan_gpu COMMAND test_scan_gpu)
set_tests_properties(scan_gpu PROPERTIES LABELS gpu SKIP_RETURN_CODE 77 TIMEOUT 600)

# Generated kernels (codegen_group) compiled as C++ against the same emulator at test time and compared with the
# cpu backend: the generated index math is checked numerically in CI too.
add_executable(test_emu_generated ${CMAKE_CURRENT_SOURCE_DIR}/test_emu_generated.c)
target_compile_options(test_emu_generated PRIVATE -Wno-unused-function)   # scan_ref.h's other references
target_link_libraries(test_emu_generated PRIVATE runtime codegen compiler)
add_test(NAME emu_generated COMMAND test_emu_generated ${CMAKE_CXX_COMPILER} ${CMAKE_CURRENT_SOURCE_DIR}/emu)
set_tests_properties(emu_generated PROPERTIES LABELS cpu TIMEOUT 300)

# vmc's GEMM kernels (skinny_gemm.cuh with mma.sync, hopper_gemm.cuh with wgmma) and the multi-direction conv1d as the
# templates instantiate them, on the emulator: four tests, one a part, so that they run side by side (each instance
# is a C++ compile; all of them in one test came within seconds of its limit on 2 cores). Their host side is the
# templates' generators, which nvrtc_templates runs under the sanitizers, so scripts/test.sh leaves them to the plain
# build (label kernel_emulation).
add_executable(test_emu_instances ${CMAKE_CURRENT_SOURCE_DIR}/test_emu_instances.c)
target_link_libraries(test_emu_instances PRIVATE codegen m)
foreach(part skinny hopper mn)
  add_test(NAME emu_instances_${part}
           COMMAND test_emu_instances ${CMAKE_CXX_COMPILER} ${CMAKE_CURRENT_SOURCE_DIR}/emu ${part})
  set_tests_properties(emu_instances_${part} PROPERTIES LABELS "cpu;kernel_emulation" TIMEOUT 400)
endforeach()
# The kcat part with EMU_DIR relative to where it starts (the test makes it absolute: the kernels build in a
# temporary folder); then a missing EMU_DIR
add_test(NAME emu_instances_kcat COMMAND test_emu_instances ${CMAKE_CXX_COMPILER} tests/emu kcat
         WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(emu_instances_kcat PROPERTIES LABELS "cpu;kernel_emulation" TIMEOUT 400)
add_test(NAME emu_dir_missing COMMAND test_emu_instances ${CMAKE_CXX_COMPILER} no/such/folder kcat)
set_tests_properties(emu_dir_missing PROPERTIES LABELS cpu TIMEOUT 30
                     PASS_REGULAR_EXPRESSION "EMU_DIR no/such/folder: No such file or directory")
# Whole steps of the cuda backend's program on the CPU (tests/emu/emu_exec.c): the tiny models against the cpu backend
add_executable(test_emu_exec ${CMAKE_CURRENT_SOURCE_DIR}/test_emu_exec.c ${CMAKE_CURRENT_SOURCE_DIR}/emu/emu_exec.c
               ${CMAKE_CURRENT_SOURCE_DIR}/backend_pair.c)
target_include_directories(test_emu_exec PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/emu ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(test_emu_exec PRIVATE runtime codegen compiler ${CMAKE_DL_LIBS} m)
target_compile_definitions(test_emu_exec PRIVATE VMC_ROOT="${VMC_ROOT}")
# One test a part, side by side; ARM-B's shapes only without the sanitizers (its cpu oracle takes many minutes there).
set(emu_exec_parts tiny variants pairs vim)
if(NOT VMC_SANITIZE)
  list(APPEND emu_exec_parts armb)
endif()
foreach(part ${emu_exec_parts})
  add_test(NAME emu_exec_${part} COMMAND test_emu_exec ${CMAKE_CXX_COMPILER} ${CMAKE_CURRENT_SOURCE_DIR}/emu ${part})
  set_tests_properties(emu_exec_${part} PROPERTIES LABELS cpu TIMEOUT 900)
endforeach()
