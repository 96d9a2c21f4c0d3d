-- One database per service that keeps SQL (no service reads another's database).
CREATE DATABASE gateway;
CREATE DATABASE request_api;
CREATE DATABASE submitter;
CREATE DATABASE monitor;
CREATE DATABASE cycle_runner;
CREATE DATABASE notifier;
