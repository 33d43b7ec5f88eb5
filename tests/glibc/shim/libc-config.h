/* Empty stand-in for gnulib's libc-config.h, which glibc's
   malloc/scratch_buffer_*.c include when _LIBC is not defined.
   glibc-shim.h (force-included) already provides what they need.
   Strata's own file, not glibc's.  */
