/* dl_module.h - the interface between test_dlopen_loop and dl_module.so. */
#ifndef STRATA_DL_MODULE_H
#define STRATA_DL_MODULE_H

/* Filled by the module's destructors at dlclose (the module is gone when
 * the test reads it, so the memory belongs to the test). */
struct module_report {
  int c_dtor_runs;    /* the C-style destructor ran */
  int cxx_dtor_runs;  /* the C++ static object's destructor ran */
  int errors;         /* damaged contents found while unloading */
};

#endif
