# Read by cpack for each generator (CPACK_PROJECT_CONFIG_FILE). A .deb installs into /usr
# and /etc, and rld has its configuration path compiled in: a build configured for another
# prefix (the default /usr/local) would give a package whose rld looks in the wrong place.
if(CPACK_GENERATOR STREQUAL "DEB")
  if(NOT CPACK_PACKAGING_INSTALL_PREFIX STREQUAL "/usr"
     OR NOT CPACK_RLD_DEFAULT_CONFIG STREQUAL "/etc/rld/rld.conf")
    message(FATAL_ERROR
      "rld: this build is configured for prefix ${CPACK_PACKAGING_INSTALL_PREFIX} (rld reads "
      "${CPACK_RLD_DEFAULT_CONFIG}); a .deb needs -DCMAKE_INSTALL_PREFIX=/usr. "
      "scripts/package.sh builds one.")
  endif()
endif()
