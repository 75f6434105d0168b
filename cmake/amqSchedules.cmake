# Which schedules file the kernels are built with (AMQ_SCHEDULES).
#
# Default: the tuned file of the build machine's CPU, schedules/<cpu-id>.json
# (written by `amq tune`, docs/TUNING.md), when the source tree has one and the
# build is not a cross build; the hand defaults, schedules/defaults.json,
# otherwise. The id is computed from /proc/cpuinfo exactly as `amq tune` does
# (autotune/src/cpu_identity.cpp): the model name in lower case, every run of
# other characters as one '-', then -f<family>m<model>.
# -DAMQ_SCHEDULES=<file> chooses a file (schedules/defaults.json for the hand
# defaults); the default, auto, decides again at every configure.

# amq_cpu_id(<out_var>): this machine's id, "" when /proc/cpuinfo has no model name.
function(amq_cpu_id out_var)
  set(${out_var} "" PARENT_SCOPE)
  if(NOT EXISTS /proc/cpuinfo)
    return()
  endif()
  file(STRINGS /proc/cpuinfo lines LIMIT_COUNT 64)
  set(name "")
  set(family "0")
  set(model "0")
  set(have_family OFF)
  set(have_model OFF)
  foreach(line IN LISTS lines)
    if(name STREQUAL "" AND line MATCHES "^model name[ \t]*: *(.*)$")
      set(name "${CMAKE_MATCH_1}")
    elseif(NOT have_family AND line MATCHES "^cpu family[ \t]*: *([0-9]+)")
      set(family "${CMAKE_MATCH_1}")
      set(have_family ON)
    elseif(NOT have_model AND line MATCHES "^model[ \t]*: *([0-9]+)")
      set(model "${CMAKE_MATCH_1}")
      set(have_model ON)
    endif()
  endforeach()
  string(TOLOWER "${name}" id)
  string(REGEX REPLACE "[^a-z0-9]+" "-" id "${id}")
  string(REGEX REPLACE "^-+|-+$" "" id "${id}")
  if(NOT id STREQUAL "")
    set(${out_var} "${id}-f${family}m${model}" PARENT_SCOPE)
  endif()
endfunction()

set(AMQ_SCHEDULES "auto" CACHE STRING
    "Schedule knobs the kernels are built with: a JSON file, or auto (tuned for this CPU if there is a file, else the hand defaults)")
if(AMQ_SCHEDULES STREQUAL "auto")
  set(AMQ_SCHEDULES "${CMAKE_CURRENT_SOURCE_DIR}/schedules/defaults.json")
  set(why "hand defaults")
  amq_cpu_id(AMQ_CPU_ID)
  if(CMAKE_CROSSCOMPILING)
    set(why "hand defaults: cross build")
  elseif(AMQ_CPU_ID AND EXISTS "${CMAKE_CURRENT_SOURCE_DIR}/schedules/${AMQ_CPU_ID}.json")
    set(AMQ_SCHEDULES "${CMAKE_CURRENT_SOURCE_DIR}/schedules/${AMQ_CPU_ID}.json")
    set(why "tuned for this CPU")
  elseif(AMQ_CPU_ID)
    set(why "hand defaults: no schedules/${AMQ_CPU_ID}.json")
  endif()
  # `amq tune` writes schedules/<cpu-id>.json by a rename, which touches the
  # folder: the next build configures again and picks the new file up.
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${CMAKE_CURRENT_SOURCE_DIR}/schedules")
else()
  get_filename_component(AMQ_SCHEDULES "${AMQ_SCHEDULES}" ABSOLUTE)
  set(why "-DAMQ_SCHEDULES")
endif()
if(NOT EXISTS "${AMQ_SCHEDULES}")
  message(FATAL_ERROR "AMQ_SCHEDULES: no such file: ${AMQ_SCHEDULES}")
endif()
message(STATUS "amq: kernel schedules ${AMQ_SCHEDULES} (${why})")
