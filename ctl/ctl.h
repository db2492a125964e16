/* interestctl subcommands: one file each (ctl/ctl_<name>.c). Each takes
 * the arguments after the subcommand name (argv[0] is the subcommand) and
 * returns the process exit code. */
#ifndef IX_CTL_CTL_H
#define IX_CTL_CTL_H

int ctl_import(int argc, char **argv);  /* CSV data set -> record file */
int ctl_split(int argc, char **argv);   /* record file -> train/dev/test */
int ctl_train(int argc, char **argv);   /* record file -> model file */
int ctl_eval(int argc, char **argv);    /* model + baselines on a split */
int ctl_record(int argc, char **argv);  /* Kafka topic -> record file */
int ctl_replay(int argc, char **argv);  /* record file -> Kafka topic, or --offline */
int ctl_cat(int argc, char **argv);     /* print a record file's messages */
int ctl_broker(int argc, char **argv);  /* embedded mock broker for local tests */
int ctl_demo(int argc, char **argv);    /* mock broker + bundled data + the daemon */

#endif
