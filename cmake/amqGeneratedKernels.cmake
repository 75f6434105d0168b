# amq_link_generated_kernels(<target> <dir>)
#
# Links <target> with amq::runtime and with the kernels that
# `amq generate --out <dir>` wrote, so that the runner uses those (built for the
# CPU the application ships on, with its tuned schedules) in place of the
# installed kernels of the same names; kernels <dir> lacks (other bit pairs) still
# come from amq::kernels. Static archives are searched in link order and the
# first archive that defines a symbol wanted at that point provides it: the
# generated archives go first on the link line, and each generated kernel's
# symbol is marked undefined from the start (-u), so that they, and not the
# installed libamq_kernels.a, provide those kernels.
# Fails when <dir> was generated with another weight layout than the one
# amq::runtime packs weights for (AMQ_KERNEL_LAYOUT, AMQ_KERNEL_TILE).
function(amq_link_generated_kernels target dir)
  get_filename_component(dir "${dir}" ABSOLUTE)
  if(NOT EXISTS "${dir}/amqKernels.cmake")
    message(FATAL_ERROR "amq_link_generated_kernels: ${dir}/amqKernels.cmake does not "
                        "exist; write it with: amq generate --target <t> --bits <WxA> --out ${dir}")
  endif()
  include("${dir}/amqKernels.cmake")
  foreach(v LAYOUT TILE BGEMM_ACCUMULATORS BGEMM_MAX_BATCH_TILE F32_PANEL)
    if(DEFINED AMQ_KERNEL_${v} AND NOT "${AMQ_GENERATED_${v}}" STREQUAL "${AMQ_KERNEL_${v}}")
      message(FATAL_ERROR
        "amq_link_generated_kernels: the kernels in ${dir} were generated with "
        "${v} ${AMQ_GENERATED_${v}} but the installed amq::runtime was built for "
        "${AMQ_KERNEL_${v}}; generate with a schedules file that keeps "
        "bgemv layout=${AMQ_KERNEL_LAYOUT} tile=${AMQ_KERNEL_TILE} and bgemm "
        "accumulators=${AMQ_BGEMM_ACCUMULATORS} max_batch_tile=${AMQ_BGEMM_MAX_BATCH_TILE} and "
        "f32_gemv panel=${AMQ_KERNEL_F32_PANEL}, "
        "or build amq itself with -DAMQ_SCHEDULES=<that file>")
    endif()
  endforeach()
  set(libs "")
  foreach(kernel IN LISTS AMQ_GENERATED_KERNELS)
    list(APPEND libs amq::generated_${kernel})
    if(APPLE)
      target_link_options(${target} PRIVATE "LINKER:-u,_amq_${kernel}")
    else()
      target_link_options(${target} PRIVATE "LINKER:--undefined=amq_${kernel}")
    endif()
  endforeach()
  # Each archive by name, in this order (an INTERFACE target's libraries would
  # be placed after amq::runtime's own dependencies).
  target_link_libraries(${target} PRIVATE ${libs} amq::generated_halide_runtime
                                          amq::generated_kernels amq::runtime amq::kernels)
endfunction()
