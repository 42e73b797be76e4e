//! The console's staff accounts on the table: one item per account in the partition
//! `STAFF`, sort key the user name (one Query lists them all, by name).

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::ReturnValue;
use bibgate_store::{Error, Result, StaffAccount};

use super::items::{Item, get_n, get_s, key, n, s};
use super::{DynamoStore, sdk_error};

/// The partition of every staff account.
const STAFF_PK: &str = "STAFF";

fn staff_item(account: &StaffAccount) -> Item {
    let mut item = key(STAFF_PK.to_owned(), &account.user);
    item.extend([
        ("institution".to_owned(), s(&account.institution)),
        ("admin".to_owned(), n(u8::from(account.admin))),
        ("password_hash".to_owned(), s(&account.password_hash)),
        ("created_unix".to_owned(), n(account.created_unix)),
    ]);
    item
}

fn staff_from(item: &Item) -> Result<StaffAccount> {
    Ok(StaffAccount {
        user: get_s(item, "sk")?,
        institution: get_s(item, "institution")?,
        admin: get_n::<u8>(item, "admin")? != 0,
        password_hash: get_s(item, "password_hash")?,
        created_unix: get_n(item, "created_unix")?,
    })
}

fn is_condition_failure(err: &SdkError<PutItemError>) -> bool {
    matches!(
        err.as_service_error(),
        Some(PutItemError::ConditionalCheckFailedException(_))
    )
}

impl DynamoStore {
    pub(super) fn add_staff_item(&self, account: &StaffAccount) -> Result<()> {
        let what = format!("add staff account {:?}", account.user);
        let sent = self.context.block_on(async {
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(staff_item(account)))
                .condition_expression("attribute_not_exists(pk)")
                .send()
                .await
        });
        match sent {
            Ok(_) => Ok(()),
            Err(err) if is_condition_failure(&err) => Err(Error::AlreadyExists(format!(
                "staff account {:?}",
                account.user
            ))),
            Err(err) => Err(sdk_error(&what, &err)),
        }
    }

    pub(super) fn staff_item_of(&self, user: &str) -> Result<Option<StaffAccount>> {
        let item = self.context.block_on(self.get_item(
            key(STAFF_PK.to_owned(), user),
            &format!("read staff account {user:?}"),
        ))?;
        item.as_ref().map(staff_from).transpose()
    }

    pub(super) fn staff_items(&self) -> Result<Vec<StaffAccount>> {
        let items = self.context.block_on(self.query_partition(
            STAFF_PK,
            None,
            "read the staff accounts",
        ))?;
        items.iter().map(staff_from).collect()
    }

    pub(super) fn remove_staff_item(&self, user: &str) -> Result<bool> {
        let what = format!("remove staff account {user:?}");
        let output = self
            .context
            .block_on(async {
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .set_key(Some(key(STAFF_PK.to_owned(), user)))
                    .return_values(ReturnValue::AllOld)
                    .send()
                    .await
            })
            .map_err(|err| sdk_error(&what, &err))?;
        Ok(output.attributes().is_some_and(|old| !old.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_reads_back_and_a_corrupt_item_is_reported() {
        let account = StaffAccount {
            user: "ann".to_owned(),
            institution: "01DEMO_ALPHA".to_owned(),
            admin: true,
            password_hash: "$argon2id$x".to_owned(),
            created_unix: 1_700_000_000,
        };
        assert_eq!(staff_from(&staff_item(&account)).unwrap(), account);
        let mut item = staff_item(&account);
        item.remove("institution");
        assert!(matches!(staff_from(&item), Err(Error::Corrupt(_))));
    }
}
