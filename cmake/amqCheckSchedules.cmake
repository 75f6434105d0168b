cmake_minimum_required(VERSION 3.22)
# cmake -DSCHEDULES=<file> [-DMANIFEST=<manifest.json>] -P cmake/amqCheckSchedules.cmake
#
# Checks a schedules file against the kernel manifest as the configure does
# (cmake/amqManifest.cmake) and lists the variants it would build and the
# knobs of the lower ISA variants.
if(NOT MANIFEST)
  get_filename_component(MANIFEST "${CMAKE_CURRENT_LIST_DIR}/../schedules/manifest.json" ABSOLUTE)
endif()
include("${CMAKE_CURRENT_LIST_DIR}/amqManifest.cmake")
amq_manifest_load("${MANIFEST}")
amq_schedules_load("${SCHEDULES}")
foreach(v IN LISTS AMQ_VARIANTS)
  message(STATUS "variant ${v}: ${AMQ_VARIANT_${v}_KNOBS_JSON} (${AMQ_VARIANT_${v}_TUNED_US} us, common ${AMQ_VARIANT_${v}_COMMON_US} us)")
endforeach()
foreach(p IN LISTS AMQ_MANIFEST_PIPELINES)
  if(AMQ_ISA_PARAM_${p})
    message(STATUS "${p}: ${AMQ_ISA_PARAM_${p}}")
  endif()
endforeach()
foreach(s IN LISTS AMQ_VARIANTS_SKIPPED)
  message(STATUS "not built: ${s}")
endforeach()
list(LENGTH AMQ_KERNELS n)
message(STATUS "${SCHEDULES}: ok, ${n} kernels")
