-- Run once by the postgres:16 image on an empty data directory (docker-compose.yml mounts it
-- into /docker-entrypoint-initdb.d): Airflow's metadata gets a database of its own, so
-- loglake's tables and Airflow's never mix.
CREATE DATABASE airflow OWNER loglake;
