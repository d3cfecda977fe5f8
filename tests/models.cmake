# models.cmake — tests of the model zoo (models/**.vmc) against ARM_SPEC: totals, state-dict names and shapes,
# tags, and a verified graph for every ablation knob. All run `vmc` (no tensor data is allocated).
foreach(group files counts names tags graphs)
  add_test(NAME models_${group}
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/models/check_models.sh $<TARGET_FILE:vmc> ${VMC_ROOT} ${group})
  set_tests_properties(models_${group} PROPERTIES LABELS cpu TIMEOUT 300)
endforeach()
